package feed

import (
	"context"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWatchGivesTheNewestValueFirstThenEachNewOne(t *testing.T) {
	f := New[int]()
	f.Publish(1)
	f.Publish(2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := f.Watch(ctx)
	if v := <-ch; v != 2 {
		t.Fatalf("first value %d, want the newest, 2", v)
	}
	f.Publish(3)
	if v := <-ch; v != 3 {
		t.Fatalf("next value %d, want 3", v)
	}
}

func TestWatchBeforeAnyValueWaitsForTheFirst(t *testing.T) {
	f := New[string]()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := f.Watch(ctx)
	f.Publish("a")
	if v := <-ch; v != "a" {
		t.Fatalf("got %q, want a", v)
	}
}

func TestSlowReaderSkipsToTheNewestAndNeverBlocksTheWriter(t *testing.T) {
	f := New[int]()
	f.Publish(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := f.Watch(ctx)
	if v := <-ch; v != 0 {
		t.Fatalf("first value %d", v)
	}
	// Nobody reads while 100 values are published: Publish must not block.
	for i := 1; i <= 100; i++ {
		f.Publish(i)
	}
	// The reader holds at most one value taken before the last Publish;
	// the next read after it is the newest.
	var got []int
	for len(got) < 2 {
		v := <-ch
		got = append(got, v)
		if v == 100 {
			break
		}
	}
	if got[len(got)-1] != 100 {
		t.Fatalf("read %v after 100 publishes, want to reach 100 within two reads", got)
	}
	if len(got) == 2 && got[0] >= got[1] {
		t.Fatalf("values out of order: %v", got)
	}
}

func TestWatchEnds(t *testing.T) {
	for name, c := range map[string]struct {
		end func(f *Feed[int], cancel context.CancelFunc)
	}{
		"context cancelled": {end: func(_ *Feed[int], cancel context.CancelFunc) { cancel() }},
		"feed closed":       {end: func(f *Feed[int], _ context.CancelFunc) { f.Close() }},
	} {
		t.Run(name, func(t *testing.T) {
			f := New[int]()
			f.Publish(1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch := f.Watch(ctx)
			if v := <-ch; v != 1 {
				t.Fatalf("first value %d", v)
			}
			c.end(f, cancel)
			for range ch {
			}
		})
	}
}

func TestClosedFeedIgnoresPublishAndEndsNewWatches(t *testing.T) {
	f := New[int]()
	f.Publish(1)
	f.Close()
	f.Close()
	f.Publish(2)
	if v, ok, _, closed := f.Latest(); v != 1 || !ok || !closed {
		t.Fatalf("latest after close: %d %v %v", v, ok, closed)
	}
	for range f.Watch(context.Background()) {
		t.Fatal("a closed feed delivered a value")
	}
}
