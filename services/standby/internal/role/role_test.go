package role

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/testlog"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/services/standby/internal/beacon"
	"github.com/mgrplane/mgrplane/services/standby/internal/monclient"
	"github.com/mgrplane/mgrplane/services/standby/internal/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// refusingMonitor answers every Authenticate with authErr.
type refusingMonitor struct {
	authErr error
	auths   atomic.Int32
	leaves  atomic.Int32
}

func (m *refusingMonitor) Authenticate(context.Context, *mgrv1.AuthenticateRequest) (*mgrv1.AuthenticateResponse, error) {
	m.auths.Add(1)
	return nil, monclient.Classify(m.authErr)
}

func (m *refusingMonitor) Leave(context.Context, *mgrv1.LeaveRequest) (*mgrv1.LeaveResponse, error) {
	m.leaves.Add(1)
	return &mgrv1.LeaveResponse{}, nil
}

func (m *refusingMonitor) Beacon(context.Context, *mgrv1.BeaconRequest) (*mgrv1.BeaconResponse, error) {
	return nil, monclient.Classify(status.Error(codes.Unavailable, "down"))
}

func (m *refusingMonitor) WatchMap(context.Context, *mgrv1.WatchMapRequest) (int, grpc.ServerStreamingClient[mgrv1.WatchMapResponse], error) {
	return 0, nil, monclient.Classify(status.Error(codes.Unavailable, "down"))
}

func (m *refusingMonitor) Report(int, error) {}

func testRole(t *testing.T) *Role {
	return New(Config{
		Name: "x", BeaconPeriod: 10 * time.Millisecond, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		AdvertiseGRPC: "127.0.0.1", AdvertiseHTTP: "127.0.0.1", ReconnectMin: time.Millisecond, ReconnectMax: 5 * time.Millisecond,
		DrainTimeout: 100 * time.Millisecond, LeaveTimeout: time.Second,
	}, nil, testlog.New(t))
}

func TestAuthenticate(t *testing.T) {
	tests := map[string]struct {
		err     error
		wantErr codes.Code // OK: Run keeps retrying until cancelled, then returns nil
	}{
		"unavailable retries": {err: status.Error(codes.Unavailable, "no monitor")},
		"deadline retries":    {err: status.Error(codes.DeadlineExceeded, "slow")},
		"bad name fails":      {err: status.Error(codes.InvalidArgument, "bad name"), wantErr: codes.InvalidArgument},
		"wrong fsid fails":    {err: status.Error(codes.FailedPrecondition, "wrong fsid"), wantErr: codes.FailedPrecondition},
		"credentials fail":    {err: status.Error(codes.PermissionDenied, "no"), wantErr: codes.PermissionDenied},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			mon := &refusingMonitor{authErr: tc.err}
			r := testRole(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx, mon) }()
			if tc.wantErr == codes.OK {
				for deadline := time.Now().Add(10 * time.Second); mon.auths.Load() < 3; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("no retries")
					}
				}
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
			if status.Code(err) != tc.wantErr {
				t.Fatalf("Run = %v, want code %v", err, tc.wantErr)
			}
			if mon.leaves.Load() != 0 || r.GID() != 0 || r.State() != StateStandby {
				t.Errorf("leaves %d gid %d state %v, want no gid and no leave", mon.leaves.Load(), r.GID(), r.State())
			}
		})
	}
}

func TestStateString(t *testing.T) {
	tests := map[State]string{
		StateStandby: "standby", StateActivating: "activating", StateActive: "active", StateStopping: "stopping", State(9): "State(9)",
	}
	for s, want := range tests {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int32(s), got, want)
		}
	}
}

func TestLeaseMargin(t *testing.T) {
	tests := map[string]struct {
		period, want time.Duration
	}{
		"short period: the floor": {period: 20 * time.Millisecond, want: MinLeaseMargin},
		"at the floor":            {period: 200 * time.Millisecond, want: MinLeaseMargin},
		"long period: half of it": {period: time.Second, want: 500 * time.Millisecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := LeaseMargin(tc.period); got != tc.want {
				t.Errorf("LeaseMargin(%v) = %v, want %v", tc.period, got, tc.want)
			}
		})
	}
}

// grant extends the activation's lease only for an ACTIVE answer carrying a
// lease, for this activation, still running when it arrives; the lease runs
// from the beacon's send time.
func TestGrant(t *testing.T) {
	now := time.Now()
	tests := map[string]struct {
		sent      time.Time
		resp      *mgrv1.BeaconResponse
		before    time.Duration // a lease already held until now + before; 0: none
		wantUntil time.Time     // zero: none
	}{
		"granted from the send time": {
			sent:      now.Add(-10 * time.Millisecond),
			resp:      &mgrv1.BeaconResponse{Standing: mgrv1.Standing_STANDING_ACTIVE, ActiveEpoch: 5, Lease: durationpb.New(time.Minute)},
			wantUntil: now.Add(-10*time.Millisecond + time.Minute),
		},
		"no lease in the answer": {
			sent: now,
			resp: &mgrv1.BeaconResponse{Standing: mgrv1.Standing_STANDING_ACTIVE, ActiveEpoch: 5},
		},
		"zero lease": {
			sent: now,
			resp: &mgrv1.BeaconResponse{Standing: mgrv1.Standing_STANDING_ACTIVE, ActiveEpoch: 5, Lease: durationpb.New(0)},
		},
		"another activation": {
			sent: now,
			resp: &mgrv1.BeaconResponse{Standing: mgrv1.Standing_STANDING_ACTIVE, ActiveEpoch: 4, Lease: durationpb.New(time.Minute)},
		},
		"ran out before the answer arrived": {
			sent: now.Add(-2 * time.Minute),
			resp: &mgrv1.BeaconResponse{Standing: mgrv1.Standing_STANDING_ACTIVE, ActiveEpoch: 5, Lease: durationpb.New(time.Minute)},
		},
		"a shorter grant keeps the later end": {
			sent:      now,
			before:    time.Hour,
			resp:      &mgrv1.BeaconResponse{Standing: mgrv1.Standing_STANDING_ACTIVE, ActiveEpoch: 5, Lease: durationpb.New(time.Minute)},
			wantUntil: now.Add(time.Hour),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := testRole(t)
			r.fenceTimer = time.NewTimer(time.Hour)
			t.Cleanup(func() { r.fenceTimer.Stop() })
			r.fenceTimeout = time.Minute
			r.beaconer = beacon.New(nil, time.Hour, r.moduleInfo, testlog.New(t))
			srv, err := server.New(server.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DrainTimeout: 100 * time.Millisecond}, nil, testlog.New(t))
			if err == nil {
				err = srv.Start()
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Stop)
			term := srv.Activate(5)
			lease := term.Lease()
			if tc.before > 0 {
				lease.Extend(now, tc.before)
			}
			r.gid.Store(7)
			r.activeEpoch, r.activatedAt = 5, now
			r.srv.Store(srv)
			r.term.Store(term)
			r.setState(StateActivating)

			if err := r.grant(beacon.Result{GID: 7, Sent: tc.sent, Resp: tc.resp}); err != nil {
				t.Fatalf("grant = %v", err)
			}
			if got := lease.Until(); !got.Equal(tc.wantUntil) {
				t.Errorf("lease until %v, want %v", got, tc.wantUntil)
			}
			if want := !tc.wantUntil.IsZero(); r.Serving() != want {
				t.Errorf("Serving = %v, want %v", r.Serving(), want)
			}
			// The map is told available=true only once a lease is held; a
			// lease held before the grant was reported then.
			if want := !tc.wantUntil.IsZero() && tc.before == 0; r.lastReport.GetAvailable() != want {
				t.Errorf("report available = %v, want %v", r.lastReport.GetAvailable(), want)
			}
		})
	}
}
