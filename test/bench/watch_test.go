package bench

import (
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/monsim"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	// streamsPerConn is how many WatchMap streams share one client
	// connection. The monitor sets no MaxConcurrentStreams (grpc-go's default
	// is unlimited), but many subscribers would not share one connection.
	streamsPerConn = 100
	// changesPerLoop is how many map changes one benchmark iteration makes.
	changesPerLoop = 20
	// roundTimeout bounds the wait for every subscriber to get one map.
	roundTimeout = 30 * time.Second
	// startTimeout bounds the wait for the monitor to lead.
	startTimeout = 20 * time.Second
	// The managers beacon only to join: the grace and the lease keep them in
	// the map however long the run. A drop would change the map under the
	// benchmark: with `set down` the active is told to stop, and it is
	// dropped once the lease of its last beacon runs out.
	benchGrace        = 10 * time.Minute
	benchFenceTimeout = 5 * time.Minute
	// raceMaxGoroutines is the race detector's limit on live goroutines;
	// each subscriber takes two (its stream's handler and its reader).
	raceMaxGoroutines = 8128
)

// BenchmarkWatchFanout measures, over real gRPC streams on loopback, on one
// monitor and on a quorum of three with the subscribers spread over all
// three (followers serve watches from their own applied state), the time
// from just before an operator's change is issued (SetFlags toggling down, so
// that the active steps down and is promoted again) until the last of N
// WatchMap subscribers has received the map it made. The map holds three
// managers carrying four modules each. Every subscriber gets one change
// before the next is made; one iteration makes changesPerLoop changes.
//
// It reports ms_median and ms_p99 over the changes; ack_ms_median, the time
// until the SetFlags call returned to the operator (raft commit and apply, on
// CPUs the fan-out shares); and a baseline measured in the same iterations,
// N goroutines woken by closing one channel until the last one runs
// (baseline_ms_median), with x_baseline = ms_median / baseline_ms_median;
// and retries, the SetFlags calls made again because the quorum had lost
// its leader under the load (setFlags).
//
// decode=full is the end-to-end figure: each subscriber decodes the whole
// map, as a standby does. decode=epoch decodes only each map's epoch
// (epochCodec), so that its figure is the monitor's side of the fan-out
// (hub, encoding, HTTP/2) without the subscribers' decoding, which here
// shares the machine's CPUs with the monitor but elsewhere runs on the
// subscribers' own.
func BenchmarkWatchFanout(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			if raceEnabled && 2*n > raceMaxGoroutines {
				b.Skipf("%d subscribers need more than the race detector's %d goroutines", n, raceMaxGoroutines)
			}
			for _, monitors := range []int{1, 3} {
				b.Run(fmt.Sprintf("monitors=%d", monitors), func(b *testing.B) {
					b.Run("decode=full", func(b *testing.B) { benchWatchFanout(b, n, monitors) })
					b.Run("decode=epoch", func(b *testing.B) {
						benchWatchFanout(b, n, monitors, grpc.WithDefaultCallOptions(grpc.ForceCodecV2(epochCodec{})))
					})
				})
			}
		})
	}
}

func benchWatchFanout(b *testing.B, n, monitors int, opts ...grpc.DialOption) {
	// Subscribers spread evenly over the monitors; changes go to the leader.
	addrs := []string{startMonitor(b).Addr()}
	if monitors > 1 {
		addrs = startQuorum(b, monitors)
	}
	conn := dial(b, addrs[0])
	admin := mgrv1.NewAdminServiceClient(conn)
	joinManagers(b, mgrv1.NewMonitorServiceClient(conn))
	stat, err := admin.GetStat(b.Context(), &mgrv1.GetStatRequest{})
	if err != nil {
		b.Fatal(err)
	}
	epoch, down := stat.GetEpoch(), stat.GetDown()

	// Subscribe n streams and wait until each has the current map.
	var cur atomic.Pointer[round]
	first := newRound(epoch, n)
	cur.Store(first)
	errs := make(chan error, n)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var conns []*grpc.ClientConn
	b.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	var mon mgrv1.MonitorServiceClient
	for i := range n {
		if i%streamsPerConn == 0 {
			c, err := grpc.NewClient(addrs[(i/streamsPerConn)%len(addrs)], append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			mon = mgrv1.NewMonitorServiceClient(c)
		}
		stream, err := mon.WatchMap(ctx, &mgrv1.WatchMapRequest{})
		if err != nil {
			b.Fatalf("stream %d: %v", i, err)
		}
		wg.Go(func() { subscribe(ctx, stream, &cur, errs) })
	}
	if _, err := first.wait(errs); err != nil {
		b.Fatal(err)
	}

	var lat, ack, base []time.Duration
	retries := 0
	for b.Loop() {
		for range changesPerLoop {
			down = !down
			r := newRound(epoch+1, n)
			cur.Store(r)
			start := time.Now()
			resp, tries, err := setFlags(ctx, admin, down)
			acked := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			retries += tries - 1
			if resp.GetEpoch() != epoch+1 {
				b.Fatalf("set down=%v made epoch %d, want %d: something else changed the map: %s",
					down, resp.GetEpoch(), epoch+1, changesSince(admin, epoch))
			}
			last, err := r.wait(errs)
			if err != nil {
				b.Fatal(err)
			}
			epoch++
			lat = append(lat, last.Sub(start))
			ack = append(ack, acked)
			base = append(base, broadcast(n))
		}
	}
	med, baseMed := percentile(lat, 0.5), percentile(base, 0.5)
	b.ReportMetric(ms(med), "ms_median")
	b.ReportMetric(ms(percentile(lat, 0.99)), "ms_p99")
	b.ReportMetric(ms(percentile(ack, 0.5)), "ack_ms_median")
	b.ReportMetric(ms(baseMed), "baseline_ms_median")
	b.ReportMetric(float64(med)/float64(baseMed), "x_baseline")
	b.ReportMetric(float64(retries), "retries")
}

// setFlagsTries bounds the calls of one change. A change is tried again
// only when the monitor answered Unavailable: on two CPUs shared with
// thousands of subscribers a quorum can lose its leader (raft's heartbeat
// timeout is 500 ms), and the monitor then answers "not the quorum leader"
// until another leads, as mgrctl would see and retry too. Setting the flag
// again is idempotent.
const setFlagsTries = 50

// setFlags sets the down flag, retrying while the monitor is Unavailable;
// it returns the answer and how many calls it took.
func setFlags(ctx context.Context, admin mgrv1.AdminServiceClient, down bool) (*mgrv1.SetFlagsResponse, int, error) {
	for try := 1; ; try++ {
		resp, err := admin.SetFlags(ctx, &mgrv1.SetFlagsRequest{Down: down})
		if status.Code(err) != codes.Unavailable || try == setFlagsTries {
			return resp, try, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// changesSince lists the kept map changes after epoch, for a failure message.
func changesSince(admin mgrv1.AdminServiceClient, epoch uint64) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := admin.ListHistory(ctx, &mgrv1.ListHistoryRequest{SinceEpoch: epoch})
	if err != nil {
		return "history: " + err.Error()
	}
	var out []string
	for _, e := range h.GetEntries() {
		out = append(out, fmt.Sprintf("epoch %d %s: %s", e.GetEpoch(), e.GetCause(), e.GetReason()))
	}
	return strings.Join(out, "; ")
}

// subscribe reads stream until ctx ends, checking that epochs come in order
// without gaps, and counts each map towards the round awaiting its epoch. Any
// other end is reported on errs.
func subscribe(ctx context.Context, stream mgrv1.MonitorService_WatchMapClient, cur *atomic.Pointer[round], errs chan<- error) {
	var last uint64
	for {
		resp, err := stream.Recv()
		if err != nil {
			if ctx.Err() == nil {
				errs <- fmt.Errorf("watch ended: %w", err)
			}
			return
		}
		e := resp.GetMap().GetEpoch()
		if last != 0 && e != last+1 {
			errs <- fmt.Errorf("watch got epoch %d after %d", e, last)
			return
		}
		last = e
		if r := cur.Load(); r.epoch == e {
			r.arrive()
		}
	}
}

// round is one map epoch awaited by a number of subscribers.
type round struct {
	epoch uint64
	left  atomic.Int64
	done  chan struct{}
	// last is when the last subscriber arrived; written before done is closed.
	last time.Time
}

func newRound(epoch uint64, n int) *round {
	r := &round{epoch: epoch, done: make(chan struct{})}
	r.left.Store(int64(n))
	return r
}

// arrive counts one subscriber in; the last one stamps the time.
func (r *round) arrive() {
	if r.left.Add(-1) == 0 {
		r.last = time.Now()
		close(r.done)
	}
}

// wait returns when the last subscriber arrived, or the first error.
func (r *round) wait(errs <-chan error) (time.Time, error) {
	t := time.NewTimer(roundTimeout)
	defer t.Stop()
	select {
	case <-r.done:
		return r.last, nil
	case err := <-errs:
		return time.Time{}, err
	case <-t.C:
		return time.Time{}, fmt.Errorf("epoch %d: %d subscribers still waiting after %v", r.epoch, r.left.Load(), roundTimeout)
	}
}

// broadcast is the baseline: n goroutines parked on one channel, woken by
// closing it; it returns the time from the close until the last one ran.
func broadcast(n int) time.Duration {
	r := newRound(0, n)
	wake := make(chan struct{})
	var started, wg sync.WaitGroup
	started.Add(n)
	for range n {
		wg.Go(func() {
			started.Done()
			<-wake
			r.arrive()
		})
	}
	started.Wait()
	start := time.Now()
	close(wake)
	wg.Wait()
	return r.last.Sub(start)
}

// epochCodec is the subscribers' codec in decode=epoch: requests are
// encoded as usual; a WatchMapResponse is decoded to its map's epoch only.
// Its name is "proto", so the monitor sees the usual content type.
type epochCodec struct{}

func (epochCodec) Name() string { return "proto" }

func (epochCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("epoch codec: cannot encode %T", v)
	}
	data, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(data)}, nil
}

func (epochCodec) Unmarshal(data mem.BufferSlice, v any) error {
	resp, ok := v.(*mgrv1.WatchMapResponse)
	if !ok {
		return fmt.Errorf("epoch codec: cannot decode %T", v)
	}
	// WatchMapResponse.map is field 1; MgrMap.epoch is its field 1.
	m, err := field(data.Materialize(), 1, protowire.BytesType)
	if err != nil {
		return fmt.Errorf("epoch codec: map: %w", err)
	}
	e, err := field(m, 1, protowire.VarintType)
	if err != nil {
		return fmt.Errorf("epoch codec: epoch: %w", err)
	}
	epoch, n := protowire.ConsumeVarint(e)
	if n < 0 {
		return fmt.Errorf("epoch codec: epoch: %w", protowire.ParseError(n))
	}
	resp.Map = &mgrv1.MgrMap{Epoch: epoch}
	return nil
}

// field returns the first field num of type typ in the message b: a bytes
// field's contents, or a varint's encoding.
func field(b []byte, num protowire.Number, typ protowire.Type) ([]byte, error) {
	for len(b) > 0 {
		n, t, tl := protowire.ConsumeTag(b)
		if tl < 0 {
			return nil, protowire.ParseError(tl)
		}
		b = b[tl:]
		vl := protowire.ConsumeFieldValue(n, t, b)
		if vl < 0 {
			return nil, protowire.ParseError(vl)
		}
		if n == num && t == typ {
			if t == protowire.BytesType {
				v, _ := protowire.ConsumeBytes(b)
				return v, nil
			}
			return b[:vl], nil
		}
		b = b[vl:]
	}
	return nil, fmt.Errorf("field %d not found", num)
}

// percentile returns the nearest-rank p-th percentile of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// joinManagers puts three managers in the map: x active and serving, y and
// z standbys, each carrying four modules with one option.
func joinManagers(b *testing.B, mon mgrv1.MonitorServiceClient) {
	b.Helper()
	var mods []*mgrv1.ModuleInfo
	for _, name := range []string{"balancer", "dashboard", "prometheus", "status"} {
		mods = append(mods, &mgrv1.ModuleInfo{Name: name, CanRun: true, Options: []*mgrv1.ModuleOption{{
			Name: "interval", Type: mgrv1.OptionType_OPTION_TYPE_DURATION, DefaultValue: "10s", Description: "how often to run",
		}}})
	}
	for i, name := range []string{"x", "y", "z"} {
		a, err := mon.Authenticate(b.Context(), &mgrv1.AuthenticateRequest{Name: name})
		if err != nil {
			b.Fatal(err)
		}
		req := &mgrv1.BeaconRequest{Fsid: a.GetFsid(), Gid: a.GetGid(), Name: name, AvailableModules: mods,
			Metadata: map[string]string{"os": "linux", "arch": "amd64", "hostname": "node-" + name, "mgrplane_version": "0.1.0"}}
		if i == 0 {
			req.Available, req.ServerAddrs = true, []string{"127.0.0.1:6800"}
			req.Services = map[string]string{"dashboard": "http://127.0.0.1:6880/", "status": "http://127.0.0.1:6880/status/"}
			// The first beacon promotes x; the second reports it serving.
			if _, err := mon.Beacon(b.Context(), req); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := mon.Beacon(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// startQuorum runs n in-process monitors as one quorum and returns their
// addresses, the leader's first, once every one serves.
func startQuorum(b *testing.B, n int) []string {
	b.Helper()
	var addrs, peers []string
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		_ = l.Close()
		peers = append(peers, fmt.Sprintf("m%d=%s", i+1, addrs[i]))
	}
	for i := range n {
		cfg := monsim.DefaultConfig()
		cfg.Insecure = true
		// Watchers and beacons far beyond one entity's limits: none may interfere.
		cfg.BeaconRate, cfg.BeaconBurst, cfg.AuthRate, cfg.AuthBurst, cfg.MaxWatches = 1e6, 1000000, 1e6, 1000000, 1000000
		cfg.Addr, cfg.NodeID, cfg.Peers, cfg.DataDir = addrs[i], fmt.Sprintf("m%d", i+1), peers, b.TempDir()
		cfg.Grace, cfg.FenceTimeout = benchGrace, benchFenceTimeout
		srv, err := monsim.New(cfg, newBenchLogger(b))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		b.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("monitor run: %v", err)
			}
		})
	}
	deadline := time.Now().Add(startTimeout)
	for _, a := range addrs {
		waitServing(b, a, deadline)
	}
	st, err := mgrv1.NewAdminServiceClient(dial(b, addrs[0])).GetQuorumStatus(b.Context(), &mgrv1.GetQuorumStatusRequest{})
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range st.GetMembers() {
		if m.GetLeader() {
			for j, a := range addrs {
				if a == m.GetAddress() {
					addrs[0], addrs[j] = addrs[j], addrs[0]
				}
			}
		}
	}
	return addrs
}

// waitServing waits until the monitor at addr reports SERVING.
func waitServing(b *testing.B, addr string, deadline time.Time) {
	b.Helper()
	health := healthpb.NewHealthClient(dial(b, addr))
	for {
		r, err := health.Check(b.Context(), &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("monitor %s not serving: %v %v", addr, r, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startMonitor runs an in-process monitor on a loopback port with its data
// dir in b.TempDir, waits until it leads, and stops it at cleanup.
func startMonitor(b *testing.B) *monsim.Server {
	b.Helper()
	cfg := monsim.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = b.TempDir()
	cfg.Insecure = true
	// Watchers and beacons far beyond one entity's limits: none may interfere.
	cfg.BeaconRate, cfg.BeaconBurst, cfg.AuthRate, cfg.AuthBurst, cfg.MaxWatches = 1e6, 1000000, 1e6, 1000000, 1000000
	cfg.Grace, cfg.FenceTimeout = benchGrace, benchFenceTimeout
	srv, err := monsim.New(cfg, newBenchLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("monitor run: %v", err)
		}
	})
	health := healthpb.NewHealthClient(dial(b, srv.Addr()))
	deadline := time.Now().Add(startTimeout)
	for {
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return srv
		}
		if time.Now().After(deadline) {
			b.Fatalf("monitor not serving within %v: %v %v", startTimeout, r, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dial opens a client connection to addr, closed at cleanup.
func dial(b *testing.B, addr string) *grpc.ClientConn {
	b.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newBenchLogger is newTestLogger for benchmarks: only errors, so that the
// per-call debug lines and raft's start-up warning (a single voter's first
// election) neither flood the output (benchmark logs are always printed) nor
// cost more than at the default level (info).
func newBenchLogger(tb testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "monsim", Output: testWriter{tb}, Level: hclog.Error})
}
