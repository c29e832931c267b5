package creds

import (
	"strings"
	"testing"
	"time"
)

func FuzzParseKeyring(f *testing.F) {
	f.Add(string(FormatKeyring([]Entity{{Name: "client.admin", Key: NewKey(), Caps: []string{CapAdmin}}})))
	f.Add("[mgr.x]\n\tkey = AAAAAAAAAAAAAAAAAAAAAA==\n\tcaps mgrplane = \"mgr, read\"\n# c\n; d\n")
	f.Add("[client.a]\ncaps mon = \"allow *\"")
	f.Fuzz(func(t *testing.T, in string) {
		es, err := ParseKeyring([]byte(in))
		if err != nil {
			return
		}
		// Whatever parses is valid and survives a round trip unchanged.
		for _, e := range es {
			if err := e.Validate(); err != nil {
				t.Fatalf("parsed an invalid entity %+v: %v", e, err)
			}
		}
		again, err := ParseKeyring(FormatKeyring(es))
		if err != nil || len(again) != len(es) {
			t.Fatalf("round trip: %v (%d vs %d)", err, len(again), len(es))
		}
		for _, e := range again {
			o, ok := Find(es, e.Name)
			if !ok || o.Key != e.Key || strings.Join(o.Caps, ",") != strings.Join(e.Caps, ",") {
				t.Fatalf("round trip changed %s", e.Name)
			}
		}
	})
}

func FuzzParseToken(f *testing.F) {
	key := NewKey()
	tok, _ := MakeToken("client.admin", key, time.Unix(1700000000, 0))
	f.Add(tok)
	f.Add("v1:mgr.x:0:AAAAAAAAAAAAAAAAAAAAAA:AAAA")
	f.Add("v1::::")
	f.Fuzz(func(t *testing.T, in string) {
		p, err := ParseToken(in)
		if err != nil {
			return
		}
		if ValidateEntityName(p.Entity) != nil {
			t.Fatalf("parsed a token for an invalid entity %q", p.Entity)
		}
		// Only the genuine token verifies with the key.
		if p.Verify(key) && in != tok {
			t.Fatalf("a token not made with the key verified: %q", in)
		}
	})
}
