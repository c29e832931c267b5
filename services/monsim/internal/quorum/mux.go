package quorum

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// raftMagic opens every raft connection, so that raft and gRPC share one
// port: a monitor has one address, in its peers list and in its clients'.
// No gRPC client (HTTP/2 preface, TLS hello) starts with these bytes.
var raftMagic = []byte("MGRRAFT\x01")

// sniffTimeout bounds how long a new connection may take to send its
// first bytes before it is handed to gRPC as it is.
const sniffTimeout = 10 * time.Second

// Mux splits one listener between gRPC and raft by the first bytes of
// each connection.
type Mux struct {
	ln net.Listener
	// serverTLS and clientTLS protect raft connections after the magic:
	// mutual TLS between monitors. nil: plaintext (tests).
	serverTLS, clientTLS *tls.Config
	grpc                 *chanListener
	raft                 *chanListener
	logger               hclog.Logger
	wg                   sync.WaitGroup
	// conns are the raft connections, accepted and dialed: raft does not
	// close them on shutdown, so the mux does.
	mu     sync.Mutex
	conns  map[*raftConn]struct{}
	closed bool
}

// track remembers a raft connection for Close until it is closed, and
// returns it wrapped (raftConn); it refuses when the mux is closed.
func (m *Mux) track(c net.Conn) (net.Conn, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		_ = c.Close()
		return nil, false
	}
	rc := &raftConn{Conn: c, mux: m}
	m.conns[rc] = struct{}{}
	return rc, true
}

// isClosed says whether Close has run.
func (m *Mux) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// raftConn is a raft connection the mux tracks. Closing it forgets it, so
// that the set holds only open connections however many come and go. A
// read that fails because the mux closed the connection at shutdown ends
// as io.EOF, an orderly end: raft logs any other read error as a failure
// to decode a command.
type raftConn struct {
	net.Conn
	mux  *Mux
	once sync.Once
}

func (c *raftConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && c.mux.isClosed() {
		err = io.EOF
	}
	return n, err
}

func (c *raftConn) Close() error {
	c.once.Do(func() {
		c.mux.mu.Lock()
		delete(c.mux.conns, c)
		c.mux.mu.Unlock()
	})
	return c.Conn.Close()
}

// NewMux takes ownership of ln. Serve must run for either side to accept.
// serverTLS and clientTLS, when not nil, wrap raft connections in mutual
// TLS after the magic.
func NewMux(ln net.Listener, logger hclog.Logger, serverTLS, clientTLS *tls.Config) *Mux {
	return &Mux{
		ln:        ln,
		serverTLS: serverTLS,
		clientTLS: clientTLS,
		grpc:      newChanListener(ln.Addr()),
		raft:      newChanListener(ln.Addr()),
		logger:    logger.Named("mux"),
		conns:     map[*raftConn]struct{}{},
	}
}

// GRPC is the listener gRPC serves.
func (m *Mux) GRPC() net.Listener { return m.grpc }

// Raft is the stream layer of raft's network transport.
func (m *Mux) Raft() raft.StreamLayer { return &streamLayer{chanListener: m.raft, mux: m} }

// Serve accepts connections until the listener is closed (by Close).
func (m *Mux) Serve() error {
	defer m.wg.Wait()
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			m.grpc.close()
			m.raft.close()
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("failed to accept: %w", err)
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.route(conn)
		}()
	}
}

// Close stops accepting and closes every raft connection; Serve returns
// once every routing is done.
func (m *Mux) Close() error {
	m.mu.Lock()
	m.closed = true
	conns := make([]*raftConn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return m.ln.Close()
}

func (m *Mux) route(conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(sniffTimeout))
	head := make([]byte, len(raftMagic))
	n, err := io.ReadFull(conn, head)
	_ = conn.SetReadDeadline(time.Time{})
	head = head[:n]
	if err == nil && bytes.Equal(head, raftMagic) {
		if m.serverTLS != nil {
			tc := tls.Server(conn, m.serverTLS)
			_ = tc.SetDeadline(time.Now().Add(sniffTimeout))
			if err := tc.Handshake(); err != nil {
				m.logger.Warn("refused a raft connection", "peer", conn.RemoteAddr().String(), "error", err)
				_ = conn.Close()
				return
			}
			_ = tc.SetDeadline(time.Time{})
			conn = tc
		}
		if rc, ok := m.track(conn); ok {
			m.raft.deliver(rc)
		}
		return
	}
	// Anything else (gRPC, or garbage gRPC will refuse) goes to gRPC with
	// the bytes read so far put back in front.
	m.grpc.deliver(&prefixConn{Conn: conn, r: io.MultiReader(bytes.NewReader(head), conn)})
}

// prefixConn replays bytes already read from a connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener is a net.Listener fed by the mux.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) close() { l.closed.Do(func() { close(l.done) }) }

// Close stops this side accepting; the shared listener is closed by Mux.Close.
func (l *chanListener) Close() error { l.close(); return nil }

func (l *chanListener) Addr() net.Addr { return l.addr }

// streamLayer dials other monitors' shared ports with the raft magic.
type streamLayer struct {
	*chanListener
	mux *Mux
}

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(raftMagic); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("failed to open raft stream to %s: %w", address, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	if s.mux.clientTLS != nil {
		tc := tls.Client(conn, s.mux.clientTLS)
		_ = tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("failed the raft TLS handshake with %s: %w", address, err)
		}
		_ = tc.SetDeadline(time.Time{})
		conn = tc
	}
	rc, ok := s.mux.track(conn)
	if !ok {
		return nil, net.ErrClosed
	}
	return rc, nil
}
