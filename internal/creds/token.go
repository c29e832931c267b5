package creds

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A client proves it holds an entity's key with a token sent in the
// "authorization" metadata of every call, over TLS:
//
//	v1:ENTITY:UNIX_MILLIS:NONCE:MAC
//
// where NONCE is 16 random bytes and MAC is HMAC-SHA256 keyed with the
// entity's key over "mgrplane-auth-v1\nENTITY\nUNIX_MILLIS\nNONCE" (both
// base64url, unpadded). The key itself never crosses the wire, a token is
// accepted only within MaxTokenSkew of the monitor's clock, and TLS keeps
// tokens from being seen or replayed by anyone on the path.

// TokenMetadata is the gRPC metadata key carrying the token.
const TokenMetadata = "authorization"

// MaxTokenSkew is how far a token's time may be from the verifier's clock.
const MaxTokenSkew = 5 * time.Minute

// MaxTokenLen bounds a token.
const MaxTokenLen = 256

const (
	tokenVersion = "v1"
	macLabel     = "mgrplane-auth-v1"
	nonceBytes   = 16
)

// Token is a parsed token.
type Token struct {
	Entity string
	Time   time.Time
	millis string
	nonce  string
	mac    []byte
}

// MakeToken signs a token for entity with key at now.
func MakeToken(entity, key string, now time.Time) (string, error) {
	k, err := DecodeKey(key)
	if err != nil {
		return "", err
	}
	n := make([]byte, nonceBytes)
	_, _ = rand.Read(n)
	millis := strconv.FormatInt(now.UnixMilli(), 10)
	nonce := base64.RawURLEncoding.EncodeToString(n)
	mac := sign(k, entity, millis, nonce)
	return strings.Join([]string{tokenVersion, entity, millis, nonce, base64.RawURLEncoding.EncodeToString(mac)}, ":"), nil
}

func sign(key []byte, entity, millis, nonce string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(macLabel + "\n" + entity + "\n" + millis + "\n" + nonce))
	return h.Sum(nil)
}

// ParseToken reads a token without checking its MAC (Verify does).
func ParseToken(s string) (Token, error) {
	if len(s) > MaxTokenLen {
		return Token{}, fmt.Errorf("%w: token is %d bytes, at most %d", ErrInvalid, len(s), MaxTokenLen)
	}
	parts := strings.Split(s, ":")
	if len(parts) != 5 || parts[0] != tokenVersion {
		return Token{}, fmt.Errorf("%w: token must be v1:ENTITY:MILLIS:NONCE:MAC", ErrInvalid)
	}
	if err := ValidateEntityName(parts[1]); err != nil {
		return Token{}, err
	}
	ms, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || ms < 0 || strconv.FormatInt(ms, 10) != parts[2] {
		return Token{}, fmt.Errorf("%w: token time %q: must be unix milliseconds", ErrInvalid, truncate(parts[2]))
	}
	n, err := base64.RawURLEncoding.Strict().DecodeString(parts[3])
	if err != nil || len(n) != nonceBytes {
		return Token{}, fmt.Errorf("%w: token nonce: must be %d bytes of base64url", ErrInvalid, nonceBytes)
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(parts[4])
	if err != nil || len(mac) != sha256.Size {
		return Token{}, fmt.Errorf("%w: token mac: must be %d bytes of base64url", ErrInvalid, sha256.Size)
	}
	return Token{Entity: parts[1], Time: time.UnixMilli(ms), millis: parts[2], nonce: parts[3], mac: mac}, nil
}

// Verify reports whether the token was signed with key (in constant time).
func (t Token) Verify(key string) bool {
	k, err := DecodeKey(key)
	if err != nil {
		return false
	}
	return hmac.Equal(t.mac, sign(k, t.Entity, t.millis, t.nonce))
}

// Fresh checks the token's time is within MaxTokenSkew of now.
func (t Token) Fresh(now time.Time) error {
	d := now.Sub(t.Time)
	if d < -MaxTokenSkew || d > MaxTokenSkew {
		return fmt.Errorf("%w: token time %s is %v from the monitor's clock, at most %v (check the clocks)", ErrInvalid, t.Time.UTC().Format(time.RFC3339), d.Round(time.Second), MaxTokenSkew)
	}
	return nil
}
