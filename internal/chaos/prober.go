package chaos

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// activeEpochHeader is the header every answer of an active carries (gRPC
// metadata key; HTTP canonicalises it to Mgr-Active-Epoch).
const activeEpochHeader = "mgr-active-epoch"

// reconnectDelay is the gRPC prober's pause between two connection attempts
// to a manager that does not listen: a new active is seen within about this
// long after it starts listening (gRPC's default backoff would wait up to
// two minutes).
const reconnectDelay = 2 * time.Millisecond

// maxStatusBody bounds the body of GET /status/ the prober reads.
const maxStatusBody = 1 << 20

// Proto is the protocol of a probe.
type Proto string

// The protocols a manager is probed with.
const (
	// GRPC is mgr.v1.ManagerService/GetStatus.
	GRPC Proto = "grpc"
	// HTTP is GET /status/.
	HTTP Proto = "http"
)

// Target is one manager the prober calls: its name and the addresses it
// serves on while active.
type Target struct {
	Name     string
	GRPCAddr string
	HTTPAddr string
	// TLS, when set, is the client TLS for both (trusting the cluster's
	// CA); nil: plaintext.
	TLS *tls.Config
}

// Answer is one call that a manager answered as active.
type Answer struct {
	// Manager is the name of the manager called.
	Manager string `json:"manager"`
	Proto   Proto  `json:"proto"`
	// Send is when the call was made, Recv when its answer had arrived
	// (read from one monotonic clock).
	Send time.Time `json:"send"`
	Recv time.Time `json:"recv"`
	// GID is the gid the manager says it has.
	GID uint64 `json:"gid"`
	// ActiveEpoch is the fencing token of the answer: the active-epoch
	// header (the body's active_epoch when the header is missing).
	ActiveEpoch uint64 `json:"active_epoch"`
	// Earliest, when set, is the earliest instant the manager can have
	// handled the call, later than Send: the call was sent while the
	// manager's process was stopped (SIGSTOP), so it was handled after
	// SIGCONT. The analysis sets it (see ApplyStops).
	Earliest time.Time `json:"earliest,omitzero"`
}

// handled is the earliest instant the manager can have handled a.
func (a Answer) handled() time.Time {
	if a.Earliest.After(a.Send) {
		return a.Earliest
	}
	return a.Send
}

// ProbeCount is how many calls one prober loop made, and how many of them a
// manager answered as active.
type ProbeCount struct {
	Manager string `json:"manager"`
	Proto   Proto  `json:"proto"`
	Calls   int64  `json:"calls"`
	Active  int64  `json:"active"`
	// Foreign counts answers as active that named another manager than the
	// one called (a port taken by someone else); they are not recorded.
	Foreign int64 `json:"foreign"`
}

// loopCounts are one loop's counters.
type loopCounts struct {
	calls, active, foreign atomic.Int64
}

// Prober calls every manager's gRPC and HTTP status endpoints in a loop, one
// goroutine per manager and protocol, and records every answer given as
// active.
type Prober struct {
	targets []Target
	timeout time.Duration
	pause   time.Duration
	log     hclog.Logger
	counts  map[string]*loopCounts // by name + "/" + proto; fixed at New

	mu      sync.Mutex
	answers []Answer
}

// NewProber makes a prober of targets; each call is bounded by timeout and
// followed by pause.
func NewProber(targets []Target, timeout, pause time.Duration, log hclog.Logger) *Prober {
	p := &Prober{targets: targets, timeout: timeout, pause: pause, log: log, counts: map[string]*loopCounts{}}
	for _, t := range targets {
		for _, proto := range []Proto{GRPC, HTTP} {
			p.counts[t.Name+"/"+string(proto)] = &loopCounts{}
		}
	}
	return p
}

// Run probes until ctx ends; it returns nil then.
func (p *Prober) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, t := range p.targets {
		g.Go(func() error { return p.runGRPC(ctx, t) })
		g.Go(func() error { return p.runHTTP(ctx, t) })
	}
	return g.Wait()
}

// Len is how many answers are recorded.
func (p *Prober) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.answers)
}

// Answers returns the answers recorded from index from on, in the order they
// were recorded (close to, but not exactly, the order of Recv). The slice
// is shared: callers must not change it.
func (p *Prober) Answers(from int) []Answer {
	p.mu.Lock()
	defer p.mu.Unlock()
	from = min(max(from, 0), len(p.answers))
	return p.answers[from:len(p.answers):len(p.answers)]
}

// Counts returns the calls made so far, per manager and protocol.
func (p *Prober) Counts() []ProbeCount {
	var out []ProbeCount
	for _, t := range p.targets {
		for _, proto := range []Proto{GRPC, HTTP} {
			c := p.counts[t.Name+"/"+string(proto)]
			out = append(out, ProbeCount{Manager: t.Name, Proto: proto, Calls: c.calls.Load(), Active: c.active.Load(), Foreign: c.foreign.Load()})
		}
	}
	return out
}

// record keeps an answer given as active by the manager called t.
func (p *Prober) record(t Target, proto Proto, send, recv time.Time, gid, epoch uint64, name string) {
	c := p.counts[t.Name+"/"+string(proto)]
	if name != t.Name {
		if c.foreign.Add(1) == 1 { // once per loop: the next ones are counted
			p.log.Warn("an answer as active named another manager", "called", t.Name, "answered", name, "proto", proto)
		}
		return
	}
	c.active.Add(1)
	p.mu.Lock()
	p.answers = append(p.answers, Answer{Manager: t.Name, Proto: proto, Send: send, Recv: recv, GID: gid, ActiveEpoch: epoch})
	p.mu.Unlock()
}

// runGRPC calls GetStatus on t until ctx ends.
func (p *Prober) runGRPC(ctx context.Context, t Target) error {
	tc := insecure.NewCredentials()
	if t.TLS != nil {
		tc = credentials.NewTLS(t.TLS)
	}
	conn, err := grpc.NewClient(t.GRPCAddr,
		grpc.WithTransportCredentials(tc),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: reconnectDelay, Multiplier: 1, MaxDelay: reconnectDelay},
			MinConnectTimeout: p.timeout,
		}))
	if err != nil {
		return fmt.Errorf("failed to make a gRPC client of %s: %w", t.Name, err)
	}
	defer conn.Close()
	client := mgrv1.NewManagerServiceClient(conn)
	c := p.counts[t.Name+"/"+string(GRPC)]
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, p.timeout)
		var hdr metadata.MD
		send := time.Now()
		resp, err := client.GetStatus(cctx, &mgrv1.GetStatusRequest{}, grpc.Header(&hdr))
		recv := time.Now()
		cancel()
		c.calls.Add(1)
		if err == nil {
			epoch := resp.GetActiveEpoch()
			if v := hdr.Get(activeEpochHeader); len(v) > 0 {
				if e, perr := strconv.ParseUint(v[0], 10, 64); perr == nil {
					epoch = e
				}
			}
			p.record(t, GRPC, send, recv, resp.GetGid(), epoch, resp.GetName())
		}
		if !sleepCtx(ctx, p.pause) {
			break
		}
	}
	return nil
}

// statusBody is the part of GET /status/ the prober reads.
type statusBody struct {
	GID         uint64 `json:"gid"`
	Name        string `json:"name"`
	ActiveEpoch uint64 `json:"active_epoch"`
}

// runHTTP GETs /status/ on t until ctx ends. Redirects are not followed: a
// standby that redirects to the active did not answer as active.
func (p *Prober) runHTTP(ctx context.Context, t Target) error {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: p.timeout}).DialContext,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
		TLSClientConfig:     t.TLS,
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	url := "http://" + t.HTTPAddr + "/status/"
	if t.TLS != nil {
		url = "https://" + t.HTTPAddr + "/status/"
	}
	c := p.counts[t.Name+"/"+string(HTTP)]
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, p.timeout)
		send := time.Now()
		body, epoch, ok := getStatus(cctx, cl, url)
		recv := time.Now()
		cancel()
		c.calls.Add(1)
		if ok {
			if epoch == 0 {
				epoch = body.ActiveEpoch
			}
			p.record(t, HTTP, send, recv, body.GID, epoch, body.Name)
		}
		if !sleepCtx(ctx, p.pause) {
			break
		}
	}
	return nil
}

// getStatus GETs url; ok is set when the answer is 200 with the status JSON.
// epoch is the Mgr-Active-Epoch header (0 when missing).
func getStatus(ctx context.Context, cl *http.Client, url string) (body statusBody, epoch uint64, ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return body, 0, false
	}
	resp, err := cl.Do(req)
	if err != nil {
		return body, 0, false
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBody))
	if err != nil || resp.StatusCode != http.StatusOK {
		return body, 0, false
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return body, 0, false
	}
	if v := resp.Header.Get(activeEpochHeader); v != "" {
		if e, err := strconv.ParseUint(v, 10, 64); err == nil {
			epoch = e
		}
	}
	return body, epoch, true
}
