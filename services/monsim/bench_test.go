package monsim

import (
	"context"
	"github.com/mgrplane/mgrplane/internal/testlog"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/monsim/internal/mgrmap"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// protoBatch is how many proto round trips one benchmark iteration times
// together, so that reading the clock does not dominate their cost.
const protoBatch = 10

// benchStartTimeout bounds how long a benchmark waits for its monitor to lead.
const benchStartTimeout = 20 * time.Second

// BenchmarkBeacon measures one Beacon RPC (four modules, four metadata keys),
// over real gRPC on loopback to an in-process monitor of three managers,
// beside two baselines measured in the same iterations: a proto
// marshal+unmarshal of the same BeaconRequest (proto_ns/op) and a
// unary health Check on the same connection (health_ns/op). It reports
// beacon_ns/op, x_baseline (beacon / proto round trip) and x_health
// (beacon / health Check); the framework's ns/op is one beacon, protoBatch
// proto round trips and one health Check together.
//
//   - unchanged: a standby's periodic beacon that changes nothing, answered
//     from the applied state with no raft round.
//   - changes-map: each beacon flips a metadata value, so its digest changes
//     and the beacon commits a new epoch through raft (raft-wal fsync).
//   - apply-unchanged: mgrmap.Apply of the unchanged beacon on the monitor's
//     state, in process (no gRPC, no raft), beside the proto round trip
//     only; its beacon_ns/op is the Apply's.
func BenchmarkBeacon(b *testing.B) {
	cfg := benchConfig(b)
	// Nobody but the benchmark beacons: keep every manager in the map however
	// long the run (a drop would change the map under the benchmark).
	cfg.Grace = 10 * time.Minute
	tm := startBenchMonitor(b, cfg)
	if tm == nil {
		b.FailNow()
	}
	health := healthpb.NewHealthClient(tm.conn)
	ctx := context.Background()
	benchJoin(b, tm, "x") // the active
	y, fsid := benchJoin(b, tm, "y")
	z, _ := benchJoin(b, tm, "z")

	unchanged := &mgrv1.BeaconRequest{Fsid: fsid, Gid: y, Name: "y", AvailableModules: benchModules(), Metadata: benchMetadata("")}

	b.Run("unchanged", func(b *testing.B) {
		epoch := tm.srv.node.State().GetMap().GetEpoch()
		runBeside(b, unchanged, health, func() {
			r, err := tm.mon.Beacon(ctx, unchanged)
			if err != nil {
				b.Fatal(err)
			}
			if r.GetEpoch() != epoch || r.GetStanding() != mgrv1.Standing_STANDING_STANDBY {
				b.Fatalf("unchanged beacon answered epoch %d standing %v, want epoch %d standby", r.GetEpoch(), r.GetStanding(), epoch)
			}
		})
	})

	b.Run("changes-map", func(b *testing.B) {
		flip := [2]*mgrv1.BeaconRequest{
			{Fsid: fsid, Gid: z, Name: "z", AvailableModules: benchModules(), Metadata: benchMetadata("a")},
			{Fsid: fsid, Gid: z, Name: "z", AvailableModules: benchModules(), Metadata: benchMetadata("b")},
		}
		epoch := tm.srv.node.State().GetMap().GetEpoch()
		runBeside(b, flip[0], health, func() {
			r, err := tm.mon.Beacon(ctx, flip[epoch%2])
			if err != nil {
				b.Fatal(err)
			}
			if r.GetEpoch() != epoch+1 {
				b.Fatalf("changing beacon answered epoch %d, want %d", r.GetEpoch(), epoch+1)
			}
			epoch++
		})
	})

	b.Run("apply-unchanged", func(b *testing.B) {
		st := tm.srv.node.State()
		cmd := &mgrv1.Command{Op: &mgrv1.Command_Beacon{Beacon: unchanged}, Time: timestamppb.Now()}
		runBeside(b, unchanged, nil, func() {
			_, r, err := mgrmap.Apply(st, cmd)
			if err != nil {
				b.Fatal(err)
			}
			if r.Changed {
				b.Fatal("unchanged beacon changed the map")
			}
		})
	})
}

// BenchmarkBeaconSecurity measures the cost of TLS and authentication on the
// beacon path: an unchanged beacon (as BenchmarkBeacon/unchanged) to a
// plaintext monitor with no credentials and to a secure one (TLS 1.3, a
// fresh HMAC token per call checked against the replicated keyring, the
// caps, gid binding and rate-limit checks of the guard), alternated in the
// same iterations, for a standby's beacon and for the active's. It reports
// plain_ns/op, secure_ns/op and x_plain (secure / plain). The secure monitor's beacon rate limit is raised: the benchmark
// beacons far faster than any manager.
func BenchmarkBeaconSecurity(b *testing.B) {
	plainCfg := benchConfig(b)
	plainCfg.Grace = 10 * time.Minute
	secureCfg := secureConfig(b)
	secureCfg.Grace = 10 * time.Minute
	secureCfg.AuthRate, secureCfg.AuthBurst, secureCfg.BeaconRate, secureCfg.BeaconBurst = maxRate, maxRate, maxRate, maxRate
	plain, secure := startBenchMonitor(b, plainCfg), startBenchMonitor(b, secureCfg)
	if plain == nil || secure == nil {
		b.FailNow()
	}
	ctx := context.Background()
	// On the secure monitor each manager is mgr.NAME with its own key.
	secureMon := map[string]mgrv1.MonitorServiceClient{}
	for _, name := range []string{"x", "y"} {
		conn, err := grpc.NewClient(secure.srv.Addr(), clientOptions(b, secureCfg, "mgr."+name)...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		secureMon[name] = mgrv1.NewMonitorServiceClient(conn)
	}
	join := func(c mgrv1.MonitorServiceClient, name string) *mgrv1.BeaconRequest {
		a, err := c.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: name})
		if err != nil {
			b.Fatal(err)
		}
		req := &mgrv1.BeaconRequest{Fsid: a.GetFsid(), Gid: a.GetGid(), Name: name, AvailableModules: benchModules(), Metadata: benchMetadata("")}
		if _, err := c.Beacon(ctx, req); err != nil {
			b.Fatal(err)
		}
		return req
	}
	plainX, secureX := join(plain.mon, "x"), join(secureMon["x"], "x")
	plainY, secureY := join(plain.mon, "y"), join(secureMon["y"], "y")
	beacon := func(c mgrv1.MonitorServiceClient, req *mgrv1.BeaconRequest, want mgrv1.Standing) time.Duration {
		start := time.Now()
		r, err := c.Beacon(ctx, req)
		d := time.Since(start)
		if err != nil || r.GetStanding() != want {
			b.Fatalf("beacon: %v %v, want %v", r, err, want)
		}
		return d
	}
	// standby: the common beacon, answered from the applied state; active:
	// the lease renewal, which first confirms leadership with a raft round.
	for _, bc := range []struct {
		name             string
		plainReq, secReq *mgrv1.BeaconRequest
		sec              mgrv1.MonitorServiceClient
		want             mgrv1.Standing
	}{
		{"standby", plainY, secureY, secureMon["y"], mgrv1.Standing_STANDING_STANDBY},
		{"active", plainX, secureX, secureMon["x"], mgrv1.Standing_STANDING_ACTIVE},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var plainD, secureD time.Duration
			for b.Loop() {
				plainD += beacon(plain.mon, bc.plainReq, bc.want)
				secureD += beacon(bc.sec, bc.secReq, bc.want)
			}
			n := float64(b.N)
			b.ReportMetric(float64(plainD.Nanoseconds())/n, "plain_ns/op")
			b.ReportMetric(float64(secureD.Nanoseconds())/n, "secure_ns/op")
			b.ReportMetric(float64(secureD)/float64(plainD), "x_plain")
		})
	}
}

// runBeside runs op once per benchmark iteration and, in the same
// iterations, protoBatch proto round trips of probe and (when health is not
// nil) one health Check, then reports each one's ns/op and op's ratio to them.
func runBeside(b *testing.B, probe *mgrv1.BeaconRequest, health healthpb.HealthClient, op func()) {
	ctx := context.Background()
	var opD, protoD, healthD time.Duration
	for b.Loop() {
		start := time.Now()
		op()
		opD += time.Since(start)

		start = time.Now()
		for range protoBatch {
			protoRoundTrip(b, probe)
		}
		protoD += time.Since(start)

		if health != nil {
			start = time.Now()
			r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				b.Fatalf("health check: %v %v", r, err)
			}
			healthD += time.Since(start)
		}
	}
	n := float64(b.N)
	opNs := float64(opD.Nanoseconds()) / n
	protoNs := float64(protoD.Nanoseconds()) / (n * protoBatch)
	b.ReportMetric(opNs, "beacon_ns/op")
	b.ReportMetric(protoNs, "proto_ns/op")
	b.ReportMetric(opNs/protoNs, "x_baseline")
	if health != nil {
		healthNs := float64(healthD.Nanoseconds()) / n
		b.ReportMetric(healthNs, "health_ns/op")
		b.ReportMetric(opNs/healthNs, "x_health")
	}
}

// protoRoundTrip encodes req and decodes it again, as the gRPC codec does on
// either side of a call.
func protoRoundTrip(b *testing.B, req *mgrv1.BeaconRequest) {
	data, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	var got mgrv1.BeaconRequest
	if err := proto.Unmarshal(data, &got); err != nil {
		b.Fatal(err)
	}
}

// benchModules is what a manager carries: a few modules, one option each.
func benchModules() []*mgrv1.ModuleInfo {
	var mods []*mgrv1.ModuleInfo
	for _, name := range []string{"balancer", "dashboard", "prometheus", "status"} {
		mods = append(mods, &mgrv1.ModuleInfo{Name: name, CanRun: true, Options: []*mgrv1.ModuleOption{{
			Name: "interval", Type: mgrv1.OptionType_OPTION_TYPE_DURATION, DefaultValue: "10s", Description: "how often to run",
		}}})
	}
	return mods
}

// benchMetadata is what a manager reports; a non-empty flip adds one more
// key whose value the changes-map benchmark alternates.
func benchMetadata(flip string) map[string]string {
	md := map[string]string{"os": "linux", "arch": "amd64", "hostname": "node-1", "mgrplane_version": "0.1.0"}
	if flip != "" {
		md["bench"] = flip
	}
	return md
}

func benchConfig(b *testing.B) Config {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = b.TempDir()
	cfg.Insecure = true
	// Benchmarks call far faster than managers do: no rate limit or watch
	// cap may interfere.
	cfg.AuthRate, cfg.AuthBurst, cfg.BeaconRate, cfg.BeaconBurst, cfg.MaxWatches = maxRate, maxRate, maxRate, maxRate, maxRate
	return cfg
}

// startBenchMonitor is startMonitor for benchmarks: the logger keeps only
// errors, so that the per-call debug lines and raft's start-up warning
// neither flood the benchmark output (always printed) nor cost more than
// they do at the default level (info).
func startBenchMonitor(b testing.TB, cfg Config) *testMonitor {
	b.Helper()
	logger := hclog.New(&hclog.LoggerOptions{Name: "monsim", Output: testlog.Writer(b), Level: hclog.Error})
	srv, err := New(cfg, logger)
	if err != nil {
		b.Error(err)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	tm := &testMonitor{srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { tm.done <- srv.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if tm.conn != nil {
			_ = tm.conn.Close()
		}
		if err := <-tm.done; err != nil {
			b.Errorf("monitor run: %v", err)
		}
	})
	conn, err := grpc.NewClient(srv.Addr(), clientOptions(b, cfg, "client.admin")...)
	if err != nil {
		b.Error(err)
		return nil
	}
	tm.conn = conn
	tm.mon, tm.admin = mgrv1.NewMonitorServiceClient(conn), mgrv1.NewAdminServiceClient(conn)
	deadline := time.Now().Add(benchStartTimeout)
	for {
		if _, err := tm.admin.GetStat(ctx, &mgrv1.GetStatRequest{}); err == nil && srv.ready.Load() {
			return tm
		}
		if time.Now().After(deadline) {
			b.Errorf("monitor did not become ready within %v", benchStartTimeout)
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// benchJoin authenticates name and beacons it once, as join does, and
// returns its gid and the cluster's fsid.
func benchJoin(b *testing.B, tm *testMonitor, name string) (gid uint64, fsid string) {
	b.Helper()
	ctx := context.Background()
	a, err := tm.mon.Authenticate(ctx, &mgrv1.AuthenticateRequest{Name: name})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tm.mon.Beacon(ctx, &mgrv1.BeaconRequest{Fsid: a.GetFsid(), Gid: a.GetGid(), Name: name,
		AvailableModules: benchModules(), Metadata: benchMetadata("")}); err != nil {
		b.Fatal(err)
	}
	return a.GetGid(), a.GetFsid()
}
