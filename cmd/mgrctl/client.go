package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/version"
)

// Connection tunables.
const (
	// defaultMonitorPort is added to a --monitor address given without a port.
	defaultMonitorPort = "6789"

	// keepaliveTime is how long a connection may be idle, while a call (in
	// practice a watch stream) is open, before the client pings the monitor.
	// It must be at least the monitor's keepalive EnforcementPolicy.MinTime,
	// or the monitor answers the pings with GOAWAY (too_many_pings).
	keepaliveTime = 30 * time.Second
	// keepaliveTimeout is how long the client waits for the ping's answer
	// before it declares the connection dead: a watch on a monitor that
	// vanished without closing (power loss, partition) then ends with
	// Unavailable and reconnects, instead of hanging forever.
	keepaliveTimeout = 10 * time.Second
	// keepalivePermitWithoutStream is false: a CLI with no call open has
	// nothing to keep alive.
	keepalivePermitWithoutStream = false

	// connectBaseDelay and connectMaxDelay bound gRPC's own reconnection
	// backoff, so that a restarted monitor is found again within a few
	// seconds rather than gRPC's default two minutes.
	connectBaseDelay = 100 * time.Millisecond
	connectMaxDelay  = 5 * time.Second

	// retryPause is the pause before a second round of calls when every
	// monitor answered Unavailable.
	retryPause = 200 * time.Millisecond
)

// dial opens a (lazy) client connection to one monitor. It is the one place
// that chooses transport credentials and dial options: TLS comes here.
func dial(addr string, secure []grpc.DialOption) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, append(secure,
		grpc.WithUserAgent("mgrctl/"+version.Version),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                keepaliveTime,
			Timeout:             keepaliveTimeout,
			PermitWithoutStream: keepalivePermitWithoutStream,
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  connectBaseDelay,
				Multiplier: backoff.DefaultConfig.Multiplier,
				Jitter:     backoff.DefaultConfig.Jitter,
				MaxDelay:   connectMaxDelay,
			},
		}),
	)...)
}

// normalizeAddr adds the default port to an address that has none; targets
// with a gRPC scheme ("dns:///…", "unix:…") are left alone.
func normalizeAddr(addr string) string {
	if strings.Contains(addr, ":/") || strings.HasPrefix(addr, "unix:") {
		return addr
	}
	if _, _, err := net.SplitHostPort(addr); err != nil && strings.Contains(err.Error(), "missing port") {
		return net.JoinHostPort(strings.Trim(addr, "[]"), defaultMonitorPort)
	}
	return addr
}

// client calls the monitors named by --monitor, one at a time: the one that
// answered last first, then the others in order.
type client struct {
	addrs   []string
	conns   []*grpc.ClientConn
	timeout time.Duration
	log     hclog.Logger
	// current is the index of the monitor to try first.
	current int
}

// newClient makes (lazy) connections to every address. A target gRPC cannot
// parse is a usage error.
func newClient(addrs []string, timeout time.Duration, log hclog.Logger, secure []grpc.DialOption) (*client, error) {
	c := &client{timeout: timeout, log: log}
	for _, a := range addrs {
		a = normalizeAddr(a)
		cc, err := dial(a, secure)
		if err != nil {
			c.Close()
			return nil, &usageError{msg: fmt.Sprintf("--monitor: invalid address %q: %v", a, err)}
		}
		c.addrs = append(c.addrs, a)
		c.conns = append(c.conns, cc)
	}
	return c, nil
}

// Close closes every connection.
func (c *client) Close() {
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}

// unary runs call against the monitors in turn until one answers. It moves on
// to the next monitor on Unavailable (unreachable, not the leader, no quorum)
// and, when readOnly, also on DeadlineExceeded (a hung monitor); a write that
// timed out may have been applied, so it is not sent again. Each attempt has
// its own deadline of c.timeout. When every monitor answered Unavailable
// (nothing was applied), it tries them all once more after retryPause: a
// connection attempt that failed once (a monitor restarting, a connection
// reset in its handshake) does not fail the command.
func (c *client) unary(ctx context.Context, readOnly bool, call func(ctx context.Context, cc grpc.ClientConnInterface) error) error {
	var errs []string
	var last error
	for round := range 2 {
		if round > 0 && !sleep(ctx, retryPause) {
			return last
		}
		errs = errs[:0]
		allUnavailable := true
		for i := range c.addrs {
			idx := (c.current + i) % len(c.addrs)
			actx, cancel := context.WithTimeout(ctx, c.timeout)
			err := call(actx, c.conns[idx])
			cancel()
			if err == nil {
				c.current = idx
				return nil
			}
			code := status.Code(err)
			if ctx.Err() != nil || !(code == codes.Unavailable || (readOnly && code == codes.DeadlineExceeded)) {
				return err
			}
			allUnavailable = allUnavailable && code == codes.Unavailable
			c.log.Debug("monitor did not answer", "monitor", c.addrs[idx], "error", err)
			errs = append(errs, c.addrs[idx]+": "+status.Convert(err).Message())
			last = err
		}
		if !allUnavailable {
			break
		}
	}
	if len(c.addrs) == 1 {
		return last
	}
	return status.Errorf(status.Code(last), "no monitor answered: %s", strings.Join(errs, "; "))
}

// adminCall runs one AdminService call through c.unary and returns its answer.
func adminCall[T any](ctx context.Context, c *client, readOnly bool, call func(context.Context, mgrv1.AdminServiceClient) (T, error)) (T, error) {
	var out T
	err := c.unary(ctx, readOnly, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		r, err := call(ctx, mgrv1.NewAdminServiceClient(cc))
		if err != nil {
			return err
		}
		out = r
		return nil
	})
	return out, err
}
