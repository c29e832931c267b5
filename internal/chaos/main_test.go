package chaos

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// base is the origin of the tests' made-up times.
var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// ms is base + n milliseconds.
func ms(n float64) time.Time { return base.Add(time.Duration(n * float64(time.Millisecond))) }

// ans is an answer of manager name (gid, active epoch) over gRPC, sent at
// send and received at recv (ms after base).
func ans(name string, gid, epoch uint64, send, recv float64) Answer {
	return Answer{Manager: name, Proto: GRPC, Send: ms(send), Recv: ms(recv), GID: gid, ActiveEpoch: epoch}
}

// serve is a steady stream of answers of one term: one every step ms from
// from to to, each taking 1 ms.
func serve(name string, gid, epoch uint64, from, to, step float64) []Answer {
	var as []Answer
	for t := from; t <= to; t += step {
		as = append(as, ans(name, gid, epoch, t, t+1))
	}
	return as
}

func concat(parts ...[]Answer) []Answer {
	var out []Answer
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
