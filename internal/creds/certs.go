package creds

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File names in a creds dir.
const (
	CACertFile  = "ca.crt"
	CAKeyFile   = "ca.key"
	MonCertFile = "mon.crt"
	MonKeyFile  = "mon.key"
	MgrCertFile = "mgr.crt"
	MgrKeyFile  = "mgr.key"
	KeyringFile = "keyring"
)

// Certificate common names: a monitor proves it is one to another monitor
// with a certificate named MonCN signed by the cluster CA.
const (
	MonCN = "mon"
	MgrCN = "mgr"
)

// Validity of the certificates Init makes.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 2 * 365 * 24 * time.Hour
)

// DefaultHosts are in every certificate Init makes.
var defaultHosts = []string{"127.0.0.1", "localhost", "::1"}

// InitOptions says what Init writes.
type InitOptions struct {
	// Hosts are added to the certificates' names (IPs or DNS names), beside
	// 127.0.0.1, localhost and ::1.
	Hosts []string
	// Managers get an entity mgr.NAME with caps mgr in the keyring.
	Managers []string
}

// initFiles are the files Init writes.
var initFiles = []string{CACertFile, CAKeyFile, MonCertFile, MonKeyFile, MgrCertFile, MgrKeyFile, KeyringFile}

// Complete reports whether dir holds every file Init writes.
func Complete(dir string) bool {
	for _, f := range initFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// Exists reports whether dir holds a CA certificate.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, CACertFile))
	return err == nil
}

// Init writes a new CA, the monitor and manager certificates and a keyring
// with client.admin (caps admin) and mgr.NAME (caps mgr) for each manager.
// It refuses to overwrite a creds dir that has any of these files.
func Init(dir string, o InitOptions) error {
	for _, m := range o.Managers {
		if err := ValidateEntityName("mgr." + m); err != nil {
			return fmt.Errorf("--mgr: %w", err)
		}
	}
	for _, h := range o.Hosts {
		if h == "" || len(h) > 253 {
			return fmt.Errorf("%w: host %q: must be 1 to 253 bytes", ErrInvalid, truncate(h))
		}
	}
	for _, f := range initFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("%s already exists: refusing to overwrite credentials", filepath.Join(dir, f))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("failed to make the creds dir: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "mgrplane CA", Organization: []string{"mgrplane"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("failed to make the CA: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writePair(dir, CACertFile, CAKeyFile, caDER, caKey); err != nil {
		return err
	}
	hosts := slices.Concat(defaultHosts, o.Hosts)
	if err := issue(dir, MonCertFile, MonKeyFile, MonCN, hosts, ca, caKey, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth); err != nil {
		return err
	}
	if err := issue(dir, MgrCertFile, MgrKeyFile, MgrCN, hosts, ca, caKey, x509.ExtKeyUsageServerAuth); err != nil {
		return err
	}
	es := []Entity{{Name: "client.admin", Key: NewKey(), Caps: []string{CapAdmin}}}
	for _, m := range o.Managers {
		es = append(es, Entity{Name: "mgr." + m, Key: NewKey(), Caps: []string{CapMgr, CapRead}})
	}
	return WriteFile(filepath.Join(dir, KeyringFile), FormatKeyring(es), 0o600)
}

// Issue signs a new certificate for cn with the CA in dir, replacing
// certFile and keyFile there (servers pick it up at their next handshake).
func Issue(dir, certFile, keyFile, cn string, hosts []string) error {
	caCert, caKey, err := loadCA(dir)
	if err != nil {
		return err
	}
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if cn == MonCN {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	return issue(dir, certFile, keyFile, cn, slices.Concat(defaultHosts, hosts), caCert, caKey, usages...)
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, err
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, nil, fmt.Errorf("%w: %s or %s is not PEM", ErrInvalid, CACertFile, CAKeyFile)
	}
	cert, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func issue(dir, certFile, keyFile, cn string, hosts []string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usages ...x509.ExtKeyUsage) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"mgrplane"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("failed to make the %s certificate: %w", cn, err)
	}
	return writePair(dir, certFile, keyFile, der, key)
}

func writePair(dir, certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	// The key first: a server reloading on the certificate's change must
	// find the matching key already there.
	if err := WriteFile(filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return WriteFile(filepath.Join(dir, certFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// WriteFile writes a file atomically (a temporary file renamed over it).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// errNoCreds says where credentials were looked for.
var errNoCreds = errors.New("no credentials")
