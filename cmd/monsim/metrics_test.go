package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mgrplane/mgrplane/internal/creds"
	"github.com/mgrplane/mgrplane/internal/testlog"
)

// metricsURL is the url of the "serving metrics" JSON log line, or "".
func metricsURL(logs string) string {
	for _, line := range strings.Split(logs, "\n") {
		var l struct {
			Msg string `json:"@message"`
			URL string `json:"url"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving metrics" {
			return l.URL
		}
	}
	return ""
}

func TestRunServesMetricsFromEnv(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &testlog.Buffer{}
	dataDir := t.TempDir()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, env(map[string]string{
			"MGRPLANE_ADDR": "127.0.0.1:0", "MGRPLANE_DATA_DIR": dataDir, "MGRPLANE_METRICS_ADDR": "127.0.0.1:0",
			"MGRPLANE_LOG_JSON": "true",
		}), &bytes.Buffer{}, logs)
	}()
	var url string
	deadline := time.Now().Add(20 * time.Second)
	for url == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		url = metricsURL(logs.String())
	}
	if url == "" {
		cancel()
		<-done
		t.Fatalf("no metrics URL logged: %s", logs.String())
	}
	// Served over TLS with the monitor's certificate, from the creds dir
	// monsim made on first start: trust its CA, and plaintext is refused.
	if !strings.HasPrefix(url, "https://") {
		t.Errorf("metrics URL %q: want https", url)
	}
	tc, err := creds.ClientTLS(filepath.Join(dataDir, "creds"))
	if err != nil {
		t.Fatal(err)
	}
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: tc}}
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := plain.Get("http" + strings.TrimPrefix(url, "https")); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plaintext GET of the metrics answered 200")
		}
	}
	var body string
	for time.Now().Before(deadline) {
		resp, err := cl.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			body = string(b)
			// The leader gauge reads 1 once the lone monitor leads.
			if resp.StatusCode == http.StatusOK && strings.Contains(body, "\nmgrplane_monitor_leader 1\n") {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(body, "\nmgrplane_monitor_leader 1\n") || !strings.Contains(body, "mgrplane_monitor_map_epoch ") {
		t.Errorf("GET %s does not show a leading monitor:\n%s", url, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
}

func TestRunRefusesABadMetricsAddr(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--data-dir", t.TempDir(), "--metrics-addr", "nowhere"}, env(nil), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `metrics addr "nowhere": must be host:port`) {
		t.Fatalf("run = %v, want an error naming the metrics addr", err)
	}
}

func TestHelpDocumentsMetricsAddr(t *testing.T) {
	var errOut bytes.Buffer
	o := &errOut
	if err := run(context.Background(), []string{"-h"}, env(nil), io.Discard, o); err == nil {
		t.Fatal("-h returned nil, want flag.ErrHelp")
	}
	if !strings.Contains(errOut.String(), "-metrics-addr") || !strings.Contains(errOut.String(), "(empty: none)") {
		t.Errorf("-h does not document --metrics-addr as off by default:\n%s", errOut.String())
	}
}
