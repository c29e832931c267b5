package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
)

// Proxy bounds.
const (
	defaultProxyListen = "127.0.0.1:6880"
	// proxyReadHeaderTimeout bounds a client's request headers.
	proxyReadHeaderTimeout = 10 * time.Second
	// proxyDialTimeout bounds a connection to the active.
	proxyDialTimeout = 5 * time.Second
	// proxyStopTimeout bounds the drain of requests in flight at the end.
	proxyStopTimeout = 5 * time.Second
	// proxyRetry is the pause before trying the monitors again when none
	// answered.
	proxyRetry = time.Second
)

// proxyTarget is the active manager the proxy forwards to.
type proxyTarget struct {
	name  string
	gid   uint64
	epoch uint64
	base  *url.URL // scheme://host:port of the active's HTTP services
}

// targetOf returns the map's active and where it serves HTTP, or nil when
// no available active publishes a service.
func targetOf(m *mgrv1.MgrMap) *proxyTarget {
	if m.GetActiveGid() == 0 || !m.GetAvailable() {
		return nil
	}
	for _, raw := range m.GetServices() {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			continue
		}
		return &proxyTarget{name: m.GetActiveName(), gid: m.GetActiveGid(), epoch: m.GetEpoch(), base: &url.URL{Scheme: u.Scheme, Host: u.Host}}
	}
	return nil
}

// runProxy is `mgrctl proxy [--listen ADDR] [--plaintext]`: one fixed
// address for the active manager's HTTP services, whichever manager that
// is. It follows the map (a watch, resumed across monitors) and forwards
// every request to the active, over TLS trusting the cluster CA; it serves
// HTTPS with the managers' certificate (mgr.crt in the creds dir), like the
// managers themselves.
func runProxy(ctx context.Context, e *env, c *cmdline) error {
	listen := c.fs.String("listen", defaultProxyListen, "where to serve, host:port")
	plaintext := c.fs.Bool("plaintext", false, "serve plain HTTP (behind your own TLS terminator); the hop to the active is TLS all the same")
	if _, err := c.parse(nil, nil); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return c.usageErr("--listen %q: must be host:port", *listen)
	}
	upstream, err := creds.ClientTLS(e.creds)
	if err != nil {
		return fmt.Errorf("the cluster CA, to check the managers: %w", err)
	}
	var serverTLS *tls.Config
	if !*plaintext {
		m, err := creds.LoadManager(e.creds)
		if err != nil {
			return fmt.Errorf("the managers' certificate, to serve HTTPS (or --plaintext): %w", err)
		}
		serverTLS = m.TLS // offers h2 and http/1.1, as the managers do
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", *listen, err)
	}
	p := newProxy(upstream)
	srv := &http.Server{Handler: p, ReadHeaderTimeout: proxyReadHeaderTimeout, TLSConfig: serverTLS}
	scheme := "https"
	if serverTLS == nil {
		scheme = "http"
	}
	log := e.log.Named("proxy")
	log.Info("serving the active manager's HTTP services", "url", scheme+"://"+lis.Addr().String()+"/")

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if serverTLS != nil {
			err = srv.ServeTLS(lis, "", "")
		} else {
			err = srv.Serve(lis)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("proxy server: %w", err)
	})
	g.Go(func() error {
		// A daemon: no monitor answering yet (they start together) is a
		// reason to wait, answering 503, not to exit.
		for since := uint64(0); ; {
			err := watchMaps(gctx, e.client, log.Named("watch"), since, func(m *mgrv1.MgrMap) error {
				since = m.GetEpoch()
				t := targetOf(m)
				old := p.target.Swap(t)
				switch {
				case t != nil && (old == nil || old.gid != t.gid || *old.base != *t.base):
					log.Info("forwarding to the active", "name", t.name, "gid", t.gid, "url", t.base.String(), "epoch", t.epoch)
				case t == nil && old != nil:
					log.Warn("no available active in the map: answering 503", "epoch", m.GetEpoch())
				}
				return nil
			})
			if gctx.Err() != nil {
				return nil
			}
			if status.Code(err) != codes.Unavailable {
				return err
			}
			log.Warn("no monitor answers; answering 503 and trying again", "pause", proxyRetry, "error", err)
			if !sleep(gctx, proxyRetry) {
				return nil
			}
		}
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), proxyStopTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		return nil
	})
	err = g.Wait()
	if ctx.Err() != nil { // interrupted: a normal end
		return nil
	}
	return err
}

// proxy forwards each request to the current active.
type proxy struct {
	target atomic.Pointer[proxyTarget]
	rp     *httputil.ReverseProxy
}

func newProxy(upstream *tls.Config) *proxy {
	p := &proxy{}
	tr := &http.Transport{
		TLSClientConfig:       upstream,
		DialContext:           (&net.Dialer{Timeout: proxyDialTimeout}).DialContext,
		TLSHandshakeTimeout:   proxyDialTimeout,
		ResponseHeaderTimeout: time.Minute,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	p.rp = &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			t, _ := pr.In.Context().Value(targetKey{}).(*proxyTarget)
			pr.SetURL(t.base)
			pr.SetXForwarded()
		},
		ModifyResponse: func(resp *http.Response) error {
			// A manager demoted while the request was on its way answers as a
			// standby: a redirect to the same path on the new active, at an
			// address the client may not reach. Send the client back here.
			if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
				if u, err := url.Parse(loc); err == nil && u.IsAbs() && u.RequestURI() == resp.Request.URL.RequestURI() {
					resp.Header.Set("Location", u.RequestURI())
				}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			t, _ := r.Context().Value(targetKey{}).(*proxyTarget)
			http.Error(w, fmt.Sprintf("the active manager %s (gid %d) at %s did not answer: %v", t.name, t.gid, t.base, err), http.StatusBadGateway)
		},
	}
	return p
}

type targetKey struct{}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := p.target.Load()
	if t == nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "no available active manager in the map; try again shortly", http.StatusServiceUnavailable)
		return
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}
