package standby_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mgrplane/mgrplane/services/standby"
)

// hello is an embedder's module: while enabled on the active manager it
// answers GET /hello/ and logs a line every minute.
type hello struct{}

func (hello) Name() string  { return "hello" }
func (hello) CanRun() error { return nil }

func (hello) Register(r standby.Registrar) {
	h := r.Host()
	r.HandleHTTP("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s (map epoch %d)\n", h.Name(), h.Map().GetEpoch())
	}))
}

func (hello) Run(ctx context.Context, h standby.Host) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			h.Logger().Info("still active", "since", h.ActiveSince())
		}
	}
}

// An embedder builds a manager with its own module and runs it until
// SIGINT or SIGTERM. Enable the module with `mgrctl module enable hello`.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg := standby.DefaultConfig()
	cfg.Name = "mgr-a"
	cfg.Monitors = []string{"127.0.0.1:6789"}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "mgr-a"})

	sb, err := standby.New(cfg, hello{})
	if err != nil {
		log.Fatal(err)
	}
	if err := sb.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
