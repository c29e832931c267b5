// Package runtimemetrics puts the Go runtime's and the process's collectors
// on a registry, for the monitor and the manager alike.
package runtimemetrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Register registers the Go runtime's and the process's collectors on reg,
// unless it holds them already (an embedder's own registry may).
func Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
				continue
			}
			return fmt.Errorf("failed to register the runtime metrics: %w", err)
		}
	}
	return nil
}
