package watch

import "fmt"

// Bounds checked by Config.Validate.
const (
	// DefaultMaxLag is the default Config.MaxLag.
	DefaultMaxLag = 1024
	// MaxMaxLag is the largest Config.MaxLag accepted. The hub keeps a ring
	// of MaxLag maps, so the bound also bounds its memory.
	MaxMaxLag = 1 << 20
)

// Config holds the hub's tunables.
type Config struct {
	// MaxLag is how many published maps a subscriber may have left
	// undelivered before it is cut off with ErrSlow. The hub keeps the last
	// MaxLag maps in memory for its subscribers.
	MaxLag int
}

// DefaultConfig returns the default configuration.
func DefaultConfig() Config {
	return Config{MaxLag: DefaultMaxLag}
}

// Validate reports the first field out of bounds, naming the field and the
// bound.
func (c Config) Validate() error {
	if c.MaxLag < 1 || c.MaxLag > MaxMaxLag {
		return fmt.Errorf("MaxLag must be between 1 and %d, got %d", MaxMaxLag, c.MaxLag)
	}
	return nil
}
