package monsim

import (
	"sync"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Every watcher is sent the same maps, so each WatchMapResponse is encoded
// once and its bytes shared by every stream: with a thousand watchers, per
// stream encoding was the largest cost of a fan-out.

// encoded is a message already in wire form.
type encoded struct{ b []byte }

// codec is the server codec: encoded messages pass through as they are,
// everything else goes to the standard proto codec.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec { return codec{proto: encoding.GetCodecV2("proto")} }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*encoded); ok {
		// A SliceBuffer's Free does nothing, so streams may share the bytes.
		return mem.BufferSlice{mem.SliceBuffer(e.b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (c codec) Name() string { return "proto" }

// encodeCacheSize is how many recent maps keep their encoding: watchers
// that lag or resume read a few epochs back.
const encodeCacheSize = 64

// encodeCache holds the encoded WatchMapResponse of recent maps by epoch.
type encodeCache struct {
	mu      sync.Mutex
	byEpoch map[uint64]*encoded
}

func newEncodeCache() *encodeCache { return &encodeCache{byEpoch: map[uint64]*encoded{}} }

// get returns the encoded response carrying m, encoding it on first use.
func (c *encodeCache) get(m *mgrv1.MgrMap) (*encoded, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byEpoch[m.GetEpoch()]; ok {
		return e, nil
	}
	b, err := proto.Marshal(&mgrv1.WatchMapResponse{Map: m})
	if err != nil {
		return nil, err
	}
	e := &encoded{b: b}
	c.byEpoch[m.GetEpoch()] = e
	if len(c.byEpoch) > encodeCacheSize {
		oldest := m.GetEpoch()
		for k := range c.byEpoch {
			oldest = min(oldest, k)
		}
		delete(c.byEpoch, oldest)
	}
	return e, nil
}
