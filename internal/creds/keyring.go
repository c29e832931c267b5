// Package creds holds mgrplane's credentials: keyrings in Ceph's format
// (entities with secret keys and caps), the TLS certificates every listener
// serves, and the per-call token a client proves its key with.
//
// A creds dir holds:
//
//	ca.crt, ca.key     the cluster CA (ECDSA P-256) that signs the rest
//	mon.crt, mon.key   the monitors' certificate (server and client: raft
//	                   and forwarded calls between monitors are mutual TLS)
//	mgr.crt, mgr.key   the managers' server certificate (gRPC and HTTP)
//	keyring            entities and keys: client.admin and mgr.NAME
//
// Keys and the keyring are written 0600.
package creds

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Caps an entity may hold.
const (
	// CapMgr: authenticate, beacon and leave as its own manager name only
	// (entity mgr.NAME), and watch the map.
	CapMgr = "mgr"
	// CapRead: watch, dump, stat, history and every other read.
	CapRead = "read"
	// CapAdmin: everything.
	CapAdmin = "admin"
)

// Bounds on keyring contents.
const (
	// MaxEntityName bounds an entity name (type, dot, id).
	MaxEntityName = 80
	// MaxKeyringSize bounds a keyring file.
	MaxKeyringSize = 1 << 20
	// KeyBytes is the length of a secret made by NewKey.
	KeyBytes = 32
	// MinKeyBytes and MaxKeyBytes bound a decoded key.
	MinKeyBytes = 16
	MaxKeyBytes = 64
)

// ErrInvalid is wrapped by every parse and validation error.
var ErrInvalid = errors.New("invalid credentials")

// Entity is one keyring entry.
type Entity struct {
	// Name is mgr.NAME, client.admin or client.NAME.
	Name string
	// Key is the base64 secret.
	Key string
	// Caps is a subset of mgr, read, admin.
	Caps []string
}

// NewKey makes a random secret key (base64 of KeyBytes bytes).
func NewKey() string {
	b := make([]byte, KeyBytes)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// DecodeKey checks a key and returns its bytes.
func DecodeKey(key string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return nil, fmt.Errorf("%w: key is not base64", ErrInvalid)
	}
	if len(b) < MinKeyBytes || len(b) > MaxKeyBytes {
		return nil, fmt.Errorf("%w: key is %d bytes, must be %d to %d", ErrInvalid, len(b), MinKeyBytes, MaxKeyBytes)
	}
	return b, nil
}

// idRule is the rule for the part after the dot.
const idRule = "1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit"

// ValidateEntityName checks name is mgr.ID or client.ID.
func ValidateEntityName(name string) error {
	typ, id, ok := strings.Cut(name, ".")
	if !ok || (typ != "mgr" && typ != "client") {
		return fmt.Errorf("%w: entity %q: must be mgr.ID or client.ID", ErrInvalid, truncate(name))
	}
	if !validID(id) {
		return fmt.Errorf("%w: entity %q: the id must be %s", ErrInvalid, truncate(name), idRule)
	}
	return nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i, r := range id {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || (r != '_' && r != '.' && r != '-')) {
			return false
		}
	}
	return true
}

// ManagerName returns NAME for entity mgr.NAME, or "" for other entities.
func ManagerName(entity string) string {
	if n, ok := strings.CutPrefix(entity, "mgr."); ok {
		return n
	}
	return ""
}

// ValidateCaps checks every cap is mgr, read or admin, once each.
func ValidateCaps(caps []string) error {
	if len(caps) == 0 {
		return fmt.Errorf("%w: caps: at least one of mgr, read, admin", ErrInvalid)
	}
	seen := map[string]bool{}
	for _, c := range caps {
		if c != CapMgr && c != CapRead && c != CapAdmin {
			return fmt.Errorf("%w: cap %q: must be mgr, read or admin", ErrInvalid, truncate(c))
		}
		if seen[c] {
			return fmt.Errorf("%w: cap %q listed twice", ErrInvalid, c)
		}
		seen[c] = true
	}
	return nil
}

// ParseCaps reads a caps value: names separated by commas or spaces.
func ParseCaps(v string) ([]string, error) {
	caps := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if err := ValidateCaps(caps); err != nil {
		return nil, err
	}
	slices.Sort(caps)
	return caps, nil
}

// Validate checks an entity's name, key and caps.
func (e Entity) Validate() error {
	if err := ValidateEntityName(e.Name); err != nil {
		return err
	}
	if _, err := DecodeKey(e.Key); err != nil {
		return fmt.Errorf("entity %s: %w", e.Name, err)
	}
	if err := ValidateCaps(e.Caps); err != nil {
		return fmt.Errorf("entity %s: %w", e.Name, err)
	}
	return nil
}

// ParseKeyring reads a keyring in Ceph's format:
//
//	[client.admin]
//		key = AQ...==
//		caps mgrplane = "admin"
//
// Blank lines and lines starting with # or ; are ignored. Caps for other
// services (Ceph's `caps mon = ...`) are refused: mgrplane would not honour
// them. Every entity must have a key and caps.
func ParseKeyring(data []byte) ([]Entity, error) {
	if len(data) > MaxKeyringSize {
		return nil, fmt.Errorf("%w: keyring is %d bytes, at most %d", ErrInvalid, len(data), MaxKeyringSize)
	}
	var out []Entity
	seen := map[string]bool{}
	var cur *Entity
	finish := func() error {
		if cur == nil {
			return nil
		}
		if cur.Key == "" {
			return fmt.Errorf("%w: entity %s: no key", ErrInvalid, cur.Name)
		}
		if len(cur.Caps) == 0 {
			return fmt.Errorf("%w: entity %s: no caps (caps mgrplane = \"...\")", ErrInvalid, cur.Name)
		}
		if err := cur.Validate(); err != nil {
			return err
		}
		out = append(out, *cur)
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxKeyringSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%w: line %d: a section header must end with ]", ErrInvalid, n)
			}
			if err := finish(); err != nil {
				return nil, err
			}
			name := strings.TrimSpace(line[1 : len(line)-1])
			if err := ValidateEntityName(name); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			if seen[name] {
				return nil, fmt.Errorf("%w: line %d: entity %s listed twice", ErrInvalid, n, name)
			}
			seen[name] = true
			cur = &Entity{Name: name}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: must be [entity], key = ... or caps mgrplane = \"...\"", ErrInvalid, n)
		}
		if cur == nil {
			return nil, fmt.Errorf("%w: line %d: %q before any [entity] section", ErrInvalid, n, truncate(strings.TrimSpace(k)))
		}
		k, v = strings.Join(strings.Fields(k), " "), strings.TrimSpace(v)
		switch {
		case k == "key":
			if cur.Key != "" {
				return nil, fmt.Errorf("%w: line %d: entity %s has two keys", ErrInvalid, n, cur.Name)
			}
			if _, err := DecodeKey(v); err != nil {
				return nil, fmt.Errorf("line %d: entity %s: %w", n, cur.Name, err)
			}
			cur.Key = v
		case k == "caps mgrplane":
			if cur.Caps != nil {
				return nil, fmt.Errorf("%w: line %d: entity %s has two caps lines", ErrInvalid, n, cur.Name)
			}
			uq, err := unquote(v)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			caps, err := ParseCaps(uq)
			if err != nil {
				return nil, fmt.Errorf("line %d: entity %s: %w", n, cur.Name, err)
			}
			cur.Caps = caps
		case strings.HasPrefix(k, "caps "):
			return nil, fmt.Errorf("%w: line %d: %q: only caps mgrplane are understood", ErrInvalid, n, truncate(k))
		default:
			return nil, fmt.Errorf("%w: line %d: unknown setting %q (key or caps mgrplane)", ErrInvalid, n, truncate(k))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return out, nil
}

func unquote(v string) (string, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if strings.ContainsAny(v, "\"\\") {
		return "", fmt.Errorf("%w: caps value %q: quotes and backslashes are not allowed inside", ErrInvalid, truncate(v))
	}
	return v, nil
}

// FormatKeyring writes entities in Ceph's keyring format, sorted by name.
func FormatKeyring(es []Entity) []byte {
	es = slices.Clone(es)
	slices.SortFunc(es, func(a, b Entity) int { return strings.Compare(a.Name, b.Name) })
	var b bytes.Buffer
	for _, e := range es {
		b.WriteString(FormatEntity(e))
	}
	return b.Bytes()
}

// FormatEntity writes one keyring section.
func FormatEntity(e Entity) string {
	caps := slices.Clone(e.Caps)
	slices.Sort(caps)
	return fmt.Sprintf("[%s]\n\tkey = %s\n\tcaps mgrplane = %q\n", e.Name, e.Key, strings.Join(caps, ", "))
}

// Find returns the entity named name.
func Find(es []Entity, name string) (Entity, bool) {
	for _, e := range es {
		if e.Name == name {
			return e, true
		}
	}
	return Entity{}, false
}

// HasCap reports whether caps include c.
func HasCap(caps []string, c string) bool { return slices.Contains(caps, c) }

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
