// Package bench holds the end-to-end benchmarks: an in-process monitor
// driven over real gRPC on loopback, each figure printed beside a baseline
// measured in the same run. It has no code of its own; run it with
//
//	go test -run '^$' -bench . -benchtime 1x ./test/bench/
//
// or `make bench`.
package bench
