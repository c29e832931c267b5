//go:build !race

package bench

// raceEnabled reports a -race build, which caps live goroutines (raceMaxGoroutines).
const raceEnabled = false
