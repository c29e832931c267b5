// Package monclient is the manager's client of the monitors: one gRPC
// connection per configured monitor address, using the first that answers and
// moving to the next when one is unavailable.
package monclient

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// Client keepalive. The map stream is long-lived and mostly idle, so pings
// are what notice a monitor that vanished without closing the connection
// (power loss, partition). The monitor's keepalive.EnforcementPolicy.MinTime
// must not exceed keepaliveTime, or it closes the connection with
// "too_many_pings".
const (
	// keepaliveTime is how long a connection may be idle before a ping.
	keepaliveTime = 20 * time.Second
	// keepaliveTimeout is how long a ping may go unanswered before the
	// connection is closed (and the stream fails with Unavailable).
	keepaliveTimeout = 5 * time.Second
)

// Errors of the monitor calls, by what the caller should do. Every error a
// Client returns wraps one of them and the gRPC status it came from
// (status.Code still works on it); Classify does the mapping, the one place
// status codes are read.
var (
	// ErrUnavailable: the monitor could not be reached, did not answer in
	// time, is not the leader, or is busy; it may pass by itself: retry.
	ErrUnavailable = errors.New("monitor unavailable")
	// ErrRefused: the monitor refuses this gid or fsid (dropped, failed,
	// replaced, never issued, owned by another name, another cluster). For a
	// beacon: authenticate again; for Authenticate: give up.
	ErrRefused = errors.New("refused by the monitor")
	// ErrTrimmed: the epoch asked for is no longer (or not yet) kept; watch
	// from the current map.
	ErrTrimmed = errors.New("epoch not kept")
	// ErrSlow: the map stream was cut off because it fell behind.
	ErrSlow = errors.New("map stream too slow")
	// ErrInvalid: the request was malformed or not allowed; retrying the
	// same request will not help.
	ErrInvalid = errors.New("request refused as invalid")
)

// Classify wraps err, a gRPC error from a monitor, with the sentinel saying
// what to do about it; nil stays nil, and a non-status error (io.EOF at the
// end of a stream) is returned as it is.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var kind error
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Internal, codes.Unknown, codes.Canceled:
		kind = ErrUnavailable
	case codes.FailedPrecondition, codes.NotFound, codes.PermissionDenied:
		kind = ErrRefused
	case codes.OutOfRange:
		kind = ErrTrimmed
	case codes.ResourceExhausted:
		kind = ErrSlow
	default:
		kind = ErrInvalid
	}
	return fmt.Errorf("%w: %w", kind, err)
}

// Client talks to the first monitor that answers. It is safe for concurrent
// use.
type Client struct {
	addrs   []string
	conns   []*grpc.ClientConn
	clients []mgrv1.MonitorServiceClient
	cur     atomic.Int64
	log     hclog.Logger
}

// New makes a client for the monitors at addrs (host:port). Connections are
// made lazily, on the first call. opts are added to the defaults (plaintext
// transport, keepalive).
func New(addrs []string, log hclog.Logger, opts ...grpc.DialOption) (*Client, error) {
	if len(addrs) == 0 {
		return nil, errors.New("monclient: no monitor address")
	}
	c := &Client{log: log}
	dopts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                keepaliveTime,
			Timeout:             keepaliveTimeout,
			PermitWithoutStream: false,
		}),
	}, opts...)
	for _, a := range addrs {
		conn, err := grpc.NewClient(a, dopts...)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("failed to make a client for monitor %q: %w", a, err)
		}
		c.addrs = append(c.addrs, a)
		c.conns = append(c.conns, conn)
		c.clients = append(c.clients, mgrv1.NewMonitorServiceClient(conn))
	}
	return c, nil
}

// Close closes every connection.
func (c *Client) Close() error {
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}

// Monitor returns the monitor in use: its index (for Report) and client.
func (c *Client) Monitor() (int, mgrv1.MonitorServiceClient) {
	i := int(c.cur.Load()) % len(c.clients)
	return i, c.clients[i]
}

// Addr returns the address of monitor i.
func (c *Client) Addr(i int) string { return c.addrs[i] }

// Report tells the client how a call to monitor i ended. When the monitor
// could not be reached or did not answer in time, later calls go to the next
// monitor (unless another call already moved on).
func (c *Client) Report(i int, err error) {
	if !Unreachable(err) || len(c.clients) == 1 {
		return
	}
	next := (i + 1) % len(c.clients)
	if c.cur.CompareAndSwap(int64(i), int64(next)) {
		c.log.Warn("monitor unreachable, trying the next", "monitor", c.addrs[i], "next", c.addrs[next], "error", err)
	}
}

// Unreachable reports whether err says the monitor could not be reached or
// did not answer in time, so another monitor may do better.
func Unreachable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// stream classifies the errors of a map stream.
type stream struct {
	grpc.ServerStreamingClient[mgrv1.WatchMapResponse]
}

func (s stream) Recv() (*mgrv1.WatchMapResponse, error) {
	m, err := s.ServerStreamingClient.Recv()
	return m, Classify(err)
}

// Authenticate calls MonitorService.Authenticate on the monitor in use.
func (c *Client) Authenticate(ctx context.Context, req *mgrv1.AuthenticateRequest) (*mgrv1.AuthenticateResponse, error) {
	i, mc := c.Monitor()
	resp, err := mc.Authenticate(ctx, req)
	c.Report(i, err)
	return resp, Classify(err)
}

// Beacon calls MonitorService.Beacon on the monitor in use.
func (c *Client) Beacon(ctx context.Context, req *mgrv1.BeaconRequest) (*mgrv1.BeaconResponse, error) {
	i, mc := c.Monitor()
	resp, err := mc.Beacon(ctx, req)
	c.Report(i, err)
	return resp, Classify(err)
}

// Leave calls MonitorService.Leave on the monitor in use.
func (c *Client) Leave(ctx context.Context, req *mgrv1.LeaveRequest) (*mgrv1.LeaveResponse, error) {
	i, mc := c.Monitor()
	resp, err := mc.Leave(ctx, req)
	c.Report(i, err)
	return resp, Classify(err)
}

// WatchMap opens a map stream on the monitor in use; its Recv errors are
// classified too. The caller reports the stream's end with Report(i, err).
func (c *Client) WatchMap(ctx context.Context, req *mgrv1.WatchMapRequest) (int, grpc.ServerStreamingClient[mgrv1.WatchMapResponse], error) {
	i, mc := c.Monitor()
	s, err := mc.WatchMap(ctx, req)
	if err != nil {
		c.Report(i, err)
		return i, nil, Classify(err)
	}
	return i, stream{s}, nil
}

// Conn is a connection to the monitor in use, for services other than
// MonitorService (the monitors' AdminService): each call goes to the
// monitor in use at that moment and moves on to the next when it is
// unreachable. Its errors are the monitors' gRPC statuses, unclassified.
func (c *Client) Conn() grpc.ClientConnInterface { return routed{c: c} }

// routed sends each call to the monitor in use.
type routed struct{ c *Client }

func (r routed) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	i := int(r.c.cur.Load()) % len(r.c.conns)
	err := r.c.conns[i].Invoke(ctx, method, args, reply, opts...)
	r.c.Report(i, err)
	return err
}

func (r routed) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	i := int(r.c.cur.Load()) % len(r.c.conns)
	s, err := r.c.conns[i].NewStream(ctx, desc, method, opts...)
	if err != nil {
		r.c.Report(i, err)
	}
	return s, err
}
