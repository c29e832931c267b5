package creds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// certFile serves a certificate and key from files, reloading them when
// either file's modification time or size changes, so that a certificate
// replaced on disk is served from the next handshake without a restart.
type certFile struct {
	certPath, keyPath string
	mu                sync.Mutex
	stamp             string
	cert              *tls.Certificate
}

func newCertFile(dir, cert, key string) (*certFile, error) {
	c := &certFile{certPath: filepath.Join(dir, cert), keyPath: filepath.Join(dir, key)}
	if _, err := c.get(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certFile) get() (*tls.Certificate, error) {
	ci, err1 := os.Stat(c.certPath)
	ki, err2 := os.Stat(c.keyPath)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err1 != nil || err2 != nil {
		if c.cert != nil {
			return c.cert, nil // keep serving the last good pair
		}
		return nil, fmt.Errorf("%w: %s and %s must both exist", errNoCreds, c.certPath, c.keyPath)
	}
	stamp := fmt.Sprint(ci.ModTime().UnixNano(), ci.Size(), ki.ModTime().UnixNano(), ki.Size())
	if stamp == c.stamp && c.cert != nil {
		return c.cert, nil
	}
	pair, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil // half-written: keep the old pair until both match
		}
		return nil, fmt.Errorf("failed to load %s: %w", c.certPath, err)
	}
	c.cert, c.stamp = &pair, stamp
	return c.cert, nil
}

// CAPool reads dir's CA certificate.
func CAPool(dir string) (*x509.CertPool, error) {
	b, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %v (make a creds dir with `monsim creds init --dir %s`)", errNoCreds, err, dir)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrInvalid, filepath.Join(dir, CACertFile))
	}
	return pool, nil
}

// Monitor is what a monitor serves and dials with.
type Monitor struct {
	// TLS serves the gRPC port. Client certificates are optional: clients
	// authenticate with keys; a verified monitor certificate marks a call
	// from another monitor (IsMonitor).
	TLS *tls.Config
	// PeerTLS dials another monitor (forwarded calls): it presents the
	// monitor certificate and accepts only a monitor certificate.
	PeerTLS *tls.Config
	// RaftServerTLS accepts raft connections: mutual TLS, monitors only.
	RaftServerTLS *tls.Config
	// Keyring seeds the replicated keyring when the cluster has none.
	Keyring []Entity
	// CAPool is the cluster CA.
	CAPool *x509.CertPool
}

// LoadMonitor reads a monitor's creds dir.
func LoadMonitor(dir string) (*Monitor, error) {
	pool, err := CAPool(dir)
	if err != nil {
		return nil, err
	}
	mon, err := newCertFile(dir, MonCertFile, MonKeyFile)
	if err != nil {
		return nil, err
	}
	kr, err := ReadKeyring(filepath.Join(dir, KeyringFile))
	if err != nil {
		return nil, err
	}
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return mon.get() }
	getClientCert := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return mon.get() }
	return &Monitor{
		TLS: &tls.Config{
			MinVersion:     tls.VersionTLS13,
			GetCertificate: getCert,
			ClientAuth:     tls.VerifyClientCertIfGiven,
			ClientCAs:      pool,
			NextProtos:     []string{"h2"},
		},
		PeerTLS: &tls.Config{
			MinVersion:           tls.VersionTLS13,
			GetClientCertificate: getClientCert,
			// The name is checked by VerifyConnection: a monitor is known by
			// its certificate's CN, whatever address it was dialed at.
			InsecureSkipVerify: true,
			VerifyConnection:   verifyMonitor(pool, x509.ExtKeyUsageServerAuth),
		},
		RaftServerTLS: &tls.Config{
			MinVersion:       tls.VersionTLS13,
			GetCertificate:   getCert,
			ClientAuth:       tls.RequireAndVerifyClientCert,
			ClientCAs:        pool,
			VerifyConnection: verifyMonitor(pool, x509.ExtKeyUsageClientAuth),
		},
		Keyring: kr,
		CAPool:  pool,
	}, nil
}

// verifyMonitor accepts a peer whose certificate chains to the CA and is
// named MonCN.
func verifyMonitor(pool *x509.CertPool, usage x509.ExtKeyUsage) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("peer presented no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return fmt.Errorf("peer certificate: %w", err)
		}
		if leaf.Subject.CommonName != MonCN {
			return fmt.Errorf("peer certificate is %q, not a monitor's (%q)", leaf.Subject.CommonName, MonCN)
		}
		return nil
	}
}

// IsMonitor reports whether a connection's verified client certificate is
// a monitor's.
func IsMonitor(cs tls.ConnectionState) bool {
	return len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 &&
		cs.VerifiedChains[0][0].Subject.CommonName == MonCN
}

// Manager is what a manager's listeners serve.
type Manager struct {
	// TLS serves the manager's gRPC and HTTP listeners with mgr.crt.
	TLS *tls.Config
}

// LoadManager reads a manager's creds dir (mgr.crt, mgr.key).
func LoadManager(dir string) (*Manager, error) {
	mgr, err := newCertFile(dir, MgrCertFile, MgrKeyFile)
	if err != nil {
		return nil, err
	}
	return &Manager{TLS: &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return mgr.get() },
		NextProtos:     []string{"h2", "http/1.1"},
	}}, nil
}

// ClientTLS is a TLS client configuration trusting dir's CA, for gRPC and
// HTTPS clients of monitors and managers.
func ClientTLS(dir string) (*tls.Config, error) {
	pool, err := CAPool(dir)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}, nil
}

// ReadKeyring reads and parses a keyring file.
func ReadKeyring(path string) ([]Entity, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoCreds, err)
	}
	if fi.Size() > MaxKeyringSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, at most %d", ErrInvalid, path, fi.Size(), MaxKeyringSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	es, err := ParseKeyring(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return es, nil
}

// Client authenticates calls to monitors as one entity over TLS.
type Client struct {
	Entity string
	key    string
	tls    *tls.Config
	now    func() time.Time
}

var _ credentials.PerRPCCredentials = (*Client)(nil)

// LoadClient reads the CA from dir and entity's key from keyringPath
// (dir/keyring when empty).
func LoadClient(dir, keyringPath, entity string) (*Client, error) {
	tc, err := ClientTLS(dir)
	if err != nil {
		return nil, err
	}
	if keyringPath == "" {
		keyringPath = filepath.Join(dir, KeyringFile)
	}
	es, err := ReadKeyring(keyringPath)
	if err != nil {
		return nil, err
	}
	e, ok := Find(es, entity)
	if !ok {
		return nil, fmt.Errorf("%w: entity %q is not in %s", errNoCreds, entity, keyringPath)
	}
	return NewClient(tc, e.Name, e.Key)
}

// NewClient authenticates as entity with key over connections made with
// tlsConfig.
func NewClient(tlsConfig *tls.Config, entity, key string) (*Client, error) {
	if err := ValidateEntityName(entity); err != nil {
		return nil, err
	}
	if _, err := DecodeKey(key); err != nil {
		return nil, err
	}
	return &Client{Entity: entity, key: key, tls: tlsConfig, now: time.Now}, nil
}

// TLS is the client's TLS configuration.
func (c *Client) TLS() *tls.Config { return c.tls }

// DialOptions are the transport and per-call credentials for grpc.NewClient.
func (c *Client) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(c.tls)),
		grpc.WithPerRPCCredentials(c),
	}
}

// GetRequestMetadata implements credentials.PerRPCCredentials: a fresh
// token for every call.
func (c *Client) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := MakeToken(c.Entity, c.key, c.now())
	if err != nil {
		return nil, err
	}
	return map[string]string{TokenMetadata: tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: tokens
// are sent only over TLS.
func (c *Client) RequireTransportSecurity() bool { return true }
