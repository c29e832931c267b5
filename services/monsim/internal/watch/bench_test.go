package watch

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// benchMaps is how many maps each round of BenchmarkFanout publishes.
const benchMaps = 200

// BenchmarkFanout measures, per published map, the time until every
// subscriber has received it: first for a baseline (one buffered channel per
// subscriber goroutine, the publisher sends to each), then for the hub. It
// reports baseline_ns/map, hub_ns/map and x_baseline (hub / baseline).
func BenchmarkFanout(b *testing.B) {
	for _, subs := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			// MaxLag = benchMaps: nobody can be cut off.
			h, err := New(Config{MaxLag: benchMaps}, &stubHistory{}, hclog.NewNullLogger())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(h.Close)
			var epoch uint64 = 1
			h.Publish(&mgrv1.MgrMap{Epoch: epoch})

			var base, hub time.Duration
			for b.Loop() {
				base += benchBaseline(b, subs)
				hub += benchHub(b, h, subs, &epoch)
			}
			baseNs := float64(base.Nanoseconds()) / float64(b.N*benchMaps)
			hubNs := float64(hub.Nanoseconds()) / float64(b.N*benchMaps)
			b.ReportMetric(baseNs, "baseline_ns/map")
			b.ReportMetric(hubNs, "hub_ns/map")
			b.ReportMetric(hubNs/baseNs, "x_baseline")
		})
	}
}

func benchMapsFrom(first uint64) []*mgrv1.MgrMap {
	ms := make([]*mgrv1.MgrMap, benchMaps)
	for i := range ms {
		ms[i] = &mgrv1.MgrMap{Epoch: first + uint64(i)}
	}
	return ms
}

// benchBaseline sends benchMaps maps to subs goroutines over one buffered
// channel each and returns the time until all were received.
func benchBaseline(b *testing.B, subs int) time.Duration {
	b.StopTimer()
	ms := benchMapsFrom(1)
	chans := make([]chan *mgrv1.MgrMap, subs)
	var wg sync.WaitGroup
	for i := range chans {
		ch := make(chan *mgrv1.MgrMap, benchMaps)
		chans[i] = ch
		wg.Go(func() {
			for range benchMaps {
				<-ch
			}
		})
	}
	b.StartTimer()
	start := time.Now()
	for _, m := range ms {
		for _, ch := range chans {
			ch <- m
		}
	}
	wg.Wait()
	return time.Since(start)
}

// benchHub publishes benchMaps maps to subs subscriptions, each read by its
// own goroutine, and returns the time until all were received.
func benchHub(b *testing.B, h *Hub, subs int, epoch *uint64) time.Duration {
	b.StopTimer()
	ms := benchMapsFrom(*epoch + 1)
	last := *epoch + benchMaps
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, subs)
	for range subs {
		s, err := h.Subscribe(*epoch)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer s.Close()
			for {
				m, err := s.Next(ctx)
				if err != nil {
					errs <- err
					return
				}
				if m.GetEpoch() == last {
					return
				}
			}
		})
	}
	b.StartTimer()
	start := time.Now()
	for _, m := range ms {
		h.Publish(m)
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	*epoch = last
	return d
}

// BenchmarkPublish measures one Publish with idle subscriptions that never
// read: its cost does not depend on how many there are.
func BenchmarkPublish(b *testing.B) {
	for _, subs := range []int{0, 10000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			h, err := New(DefaultConfig(), &stubHistory{}, hclog.NewNullLogger())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(h.Close)
			for range subs {
				s, err := h.Subscribe(0)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(s.Close)
			}
			var epoch uint64
			b.ReportAllocs()
			for b.Loop() {
				epoch++
				h.Publish(&mgrv1.MgrMap{Epoch: epoch})
			}
		})
	}
}
