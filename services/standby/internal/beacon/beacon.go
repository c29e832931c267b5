// Package beacon sends a manager's beacons: one every period, and one at once
// when asked (on activation), each with a short deadline.
package beacon

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// MinTimeout is the least time one beacon may take; the deadline is one
// beacon period or this, whichever is longer.
const MinTimeout = 250 * time.Millisecond

// Sender sends one beacon; monclient.Client is one.
type Sender interface {
	Beacon(ctx context.Context, req *mgrv1.BeaconRequest) (*mgrv1.BeaconResponse, error)
}

// Result is the outcome of one beacon.
type Result struct {
	// GID is the gid the beacon carried.
	GID uint64
	// Sent is when the beacon was sent (read just before the call, with the
	// monotonic clock): a lease in the answer runs from here.
	Sent time.Time
	// RTT is how long the call took, answered or not.
	RTT  time.Duration
	Resp *mgrv1.BeaconResponse
	Err  error
}

// Beaconer sends the latest report set with Set.
type Beaconer struct {
	send    Sender
	period  time.Duration
	timeout time.Duration
	modules func() []*mgrv1.ModuleInfo
	log     hclog.Logger
	kick    chan struct{}

	mu  sync.Mutex
	req *mgrv1.BeaconRequest
}

// New returns a Beaconer sending every period. modules is called for each
// beacon to fill available_modules.
func New(send Sender, period time.Duration, modules func() []*mgrv1.ModuleInfo, log hclog.Logger) *Beaconer {
	return &Beaconer{
		send:    send,
		period:  period,
		timeout: max(period, MinTimeout),
		modules: modules,
		log:     log,
		kick:    make(chan struct{}, 1),
	}
}

// Set replaces the report sent from the next beacon on; the Beaconer keeps
// req, which the caller must not change afterwards. A nil req, or one with
// gid 0, pauses the beacons.
func (b *Beaconer) Set(req *mgrv1.BeaconRequest) {
	b.mu.Lock()
	b.req = req
	b.mu.Unlock()
}

// Kick asks for a beacon now instead of at the next tick.
func (b *Beaconer) Kick() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Run sends beacons and hands each result to results until ctx is done; then
// it returns nil.
func (b *Beaconer) Run(ctx context.Context, results chan<- Result) error {
	t := time.NewTicker(b.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-b.kick:
		}
		b.mu.Lock()
		req := b.req
		b.mu.Unlock()
		if req.GetGid() == 0 {
			continue
		}
		req = proto.CloneOf(req)
		req.AvailableModules = b.modules()
		rctx, cancel := context.WithTimeout(ctx, b.timeout)
		sent := time.Now()
		resp, err := b.send.Beacon(rctx, req)
		rtt := time.Since(sent)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		select {
		case results <- Result{GID: req.GetGid(), Sent: sent, RTT: rtt, Resp: resp, Err: err}:
		case <-ctx.Done():
			return nil
		}
		// The next beacon comes a full period after this one.
		t.Reset(b.period)
	}
}
