package quorum

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// startMux serves a plaintext mux on a loopback port; the test closes it.
func startMux(t *testing.T) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux(ln, hclog.NewNullLogger(), nil, nil)
	done := make(chan error, 1)
	go func() { done <- m.Serve() }()
	t.Cleanup(func() {
		_ = m.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return m
}

// raftPair dials a raft stream through m to itself and returns both ends.
func raftPair(t *testing.T, m *Mux) (dialed, accepted net.Conn) {
	t.Helper()
	layer := m.Raft()
	dialed, err := layer.Dial(raft.ServerAddress(m.ln.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	accepted, err = layer.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return dialed, accepted
}

func tracked(m *Mux) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.conns)
}

// A raft connection is tracked while open and forgotten once closed: the
// set does not grow with the connections that came and went.
func TestMuxForgetsClosedRaftConnections(t *testing.T) {
	m := startMux(t)
	for range 3 {
		dialed, accepted := raftPair(t, m)
		if n := tracked(m); n != 2 {
			t.Fatalf("%d raft connections tracked with one pair open, want 2", n)
		}
		_ = dialed.Close()
		_ = accepted.Close()
		_ = accepted.Close() // twice is harmless
		if n := tracked(m); n != 0 {
			t.Fatalf("%d raft connections tracked after both ends closed, want 0", n)
		}
	}
}

// At shutdown the mux closes the raft connections; a read blocked on one
// ends with io.EOF, which raft takes for an orderly end (any other error it
// logs as a failure to decode a command).
func TestMuxCloseEndsRaftReadsWithEOF(t *testing.T) {
	m := startMux(t)
	dialed, accepted := raftPair(t, m)
	defer dialed.Close()
	read := make(chan error, 1)
	go func() {
		_, err := accepted.Read(make([]byte, 1))
		read <- err
	}()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-read:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("read after the mux closed: %v, want io.EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read on a raft connection did not end when the mux closed")
	}
	if _, err := m.Raft().Dial(raft.ServerAddress(m.ln.Addr().String()), time.Second); err == nil {
		t.Fatal("dial after close: want an error")
	}
}
