package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
	"github.com/mgrplane/mgrplane/internal/version"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestParse(t *testing.T) {
	tests := map[string]struct {
		args    []string
		env     map[string]string
		check   func(t *testing.T, o options)
		wantErr string
	}{
		"defaults": {
			args: []string{"--name", "a"},
			check: func(t *testing.T, o options) {
				if o.cfg.Name != "a" || !slices.Equal(o.cfg.Monitors, []string{"127.0.0.1:6789"}) || o.cfg.BeaconPeriod != time.Second || o.log.Level != "info" || o.log.JSON {
					t.Errorf("options = %+v", o)
				}
			},
		},
		"environment": {
			env: map[string]string{
				"MGRPLANE_NAME": "b", "MGRPLANE_MONITOR": "m1:1, m2:2", "MGRPLANE_FSID": "f",
				"MGRPLANE_BEACON_PERIOD": "250ms", "MGRPLANE_GRPC_ADDR": "0.0.0.0:7000", "MGRPLANE_HTTP_ADDR": "0.0.0.0:7001",
				"MGRPLANE_ADVERTISE_HOST": "mgr-b", "MGRPLANE_LOG_LEVEL": "debug", "MGRPLANE_LOG_JSON": "true",
				"MGRPLANE_RECONNECT_MIN": "10ms", "MGRPLANE_RECONNECT_MAX": "1s",
				"MGRPLANE_PRIORITY": "-5", "MGRPLANE_ZONE": "rack-2", "MGRPLANE_STANDBY_HTTP_STATUS": "503",
			},
			check: func(t *testing.T, o options) {
				c := o.cfg
				if c.Name != "b" || !slices.Equal(c.Monitors, []string{"m1:1", "m2:2"}) || c.FSID != "f" ||
					c.BeaconPeriod != 250*time.Millisecond || c.GRPCAddr != "0.0.0.0:7000" || c.HTTPAddr != "0.0.0.0:7001" ||
					c.AdvertiseHost != "mgr-b" || o.log.Level != "debug" || !o.log.JSON ||
					c.ReconnectMin != 10*time.Millisecond || c.ReconnectMax != time.Second ||
					c.Priority != -5 || c.Zone != "rack-2" || c.StandbyHTTPStatus != 503 {
					t.Errorf("options = %+v", o)
				}
			},
		},
		"priority bounds": {
			args: []string{"--priority", "2147483647"},
			env:  map[string]string{"MGRPLANE_PRIORITY": "-2147483648"},
			check: func(t *testing.T, o options) {
				if o.cfg.Priority != 2147483647 {
					t.Errorf("priority = %d, want 2147483647", o.cfg.Priority)
				}
			},
		},
		"priority out of range": {
			args:    []string{"--priority", "2147483648"},
			wantErr: "must be an integer from -2147483648 to 2147483647",
		},
		"priority from the environment not a number": {
			env:     map[string]string{"MGRPLANE_PRIORITY": "high"},
			wantErr: `invalid value "high" for MGRPLANE_PRIORITY`,
		},
		"flag wins over environment": {
			args: []string{"--name", "flag", "--monitor", "m3:3"},
			env:  map[string]string{"MGRPLANE_NAME": "env", "MGRPLANE_MONITOR": "m1:1"},
			check: func(t *testing.T, o options) {
				if o.cfg.Name != "flag" || !slices.Equal(o.cfg.Monitors, []string{"m3:3"}) {
					t.Errorf("options = %+v", o)
				}
			},
		},
		"bad environment value": {
			env:     map[string]string{"MGRPLANE_BEACON_PERIOD": "soon"},
			wantErr: `invalid value "soon" for MGRPLANE_BEACON_PERIOD`,
		},
		"unknown flag": {
			args:    []string{"--nope"},
			wantErr: "flag provided but not defined",
		},
		"extra argument": {
			args:    []string{"--name", "a", "extra"},
			wantErr: "unexpected arguments",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o, err := parse(tc.args, env(tc.env), io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parse = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			tc.check(t, o)
		})
	}
}

func TestRunRefuses(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
	}{
		"no name":            {args: nil, want: "--name (or MGRPLANE_NAME) is required"},
		"bad name":           {args: []string{"--name", "-x"}, want: "Name \"-x\""},
		"bad log level":      {args: []string{"--name", "a", "--log-level", "loud"}, want: "--log-level \"loud\""},
		"bad period":         {args: []string{"--name", "a", "--beacon-period", "1h"}, want: "BeaconPeriod 1h0m0s: must be between"},
		"no monitor":         {args: []string{"--name", "a", "--monitor", ""}, want: "Monitors: 0 addresses"},
		"monitor no port":    {args: []string{"--name", "a", "--monitor", "mon1"}, want: "Monitors[0] \"mon1\""},
		"bad zone":           {args: []string{"--name", "a", "--zone", "rack 1"}, want: "Zone \"rack 1\": must be empty or 1 to 64 characters"},
		"bad standby status": {args: []string{"--name", "a", "--standby-http-status", "302"}, want: "StandbyHTTPStatus 302: must be one of [303 307 503]"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := run(context.Background(), tc.args, env(nil), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != version.Version {
		t.Errorf("--version printed %q, want %q", got, version.Version)
	}
}

// lockedBuffer is a bytes.Buffer safe for the logger and the test at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// oneMonitor is a minimal monitor: it issues gid 7, makes it active at
// epoch 2 with a lease of 2s, and records beacons and Leave.
type oneMonitor struct {
	mgrv1.UnimplementedMonitorServiceServer
	mu      sync.Mutex
	beacons []*mgrv1.BeaconRequest
	leaves  []uint64
}

func (m *oneMonitor) Authenticate(context.Context, *mgrv1.AuthenticateRequest) (*mgrv1.AuthenticateResponse, error) {
	return &mgrv1.AuthenticateResponse{Gid: 7, Fsid: "f", FenceTimeout: durationpb.New(2 * time.Second)}, nil
}

func (m *oneMonitor) Beacon(_ context.Context, req *mgrv1.BeaconRequest) (*mgrv1.BeaconResponse, error) {
	if req.GetGid() != 7 {
		return nil, status.Error(codes.FailedPrecondition, "unknown gid")
	}
	m.mu.Lock()
	m.beacons = append(m.beacons, req)
	m.mu.Unlock()
	return &mgrv1.BeaconResponse{Epoch: 2, Standing: mgrv1.Standing_STANDING_ACTIVE, ActiveEpoch: 2, Lease: durationpb.New(2 * time.Second)}, nil
}

func (m *oneMonitor) Leave(_ context.Context, req *mgrv1.LeaveRequest) (*mgrv1.LeaveResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leaves = append(m.leaves, req.GetGid())
	return &mgrv1.LeaveResponse{Epoch: 3}, nil
}

func (m *oneMonitor) WatchMap(_ *mgrv1.WatchMapRequest, s grpc.ServerStreamingServer[mgrv1.WatchMapResponse]) error {
	err := s.Send(&mgrv1.WatchMapResponse{Map: &mgrv1.MgrMap{Epoch: 2, Fsid: "f", ActiveGid: 7, ActiveName: "a", ActiveEpoch: 2}})
	if err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func TestRunServesAndLeaves(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A creds dir with mgr.a; the fake monitor serves TLS with it (it does
	// not check tokens: the real monitor's guard is tested in monsim and e2e).
	credsDir := filepath.Join(t.TempDir(), "creds")
	if err := creds.Init(credsDir, creds.InitOptions{Managers: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	monCreds, err := creds.LoadMonitor(credsDir)
	if err != nil {
		t.Fatal(err)
	}
	mon := &oneMonitor{}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(monCreds.TLS)))
	mgrv1.RegisterMonitorServiceServer(srv, mon)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})

	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--beacon-period", "50ms", "--priority", "3"},
			env(map[string]string{"MGRPLANE_NAME": "a", "MGRPLANE_MONITOR": lis.Addr().String(), "MGRPLANE_ZONE": "z1", "MGRPLANE_CREDS": credsDir}), io.Discard, &logs)
	}()

	httpAddr := regexp.MustCompile(`became active: .*gid=7 epoch=2 .*http_addr=(\S+)`)
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no activation logged:\n%s", logs.String())
		}
		m = httpAddr.FindStringSubmatch(logs.String())
	}
	tc, err := creds.ClientTLS(credsDir)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: tc}}
	resp, err := c.Get("https://" + m[1] + "/status/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Mgr-Active-Epoch") != "2" {
		t.Errorf("GET /status/: %d, epoch header %q", resp.StatusCode, resp.Header.Get("Mgr-Active-Epoch"))
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	mon.mu.Lock()
	defer mon.mu.Unlock()
	if !slices.Equal(mon.leaves, []uint64{7}) {
		t.Errorf("leaves = %v, want [7]", mon.leaves)
	}
	if len(mon.beacons) == 0 {
		t.Fatal("no beacon")
	}
	for _, b := range mon.beacons {
		if b.GetPriority() != 3 || b.GetZone() != "z1" {
			t.Fatalf("beacon priority %d zone %q, want 3 z1", b.GetPriority(), b.GetZone())
		}
	}
}
