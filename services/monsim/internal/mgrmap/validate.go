package mgrmap

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"unicode/utf8"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/modopt"
)

// Bounds on what a request may carry. They are part of the protocol: a request
// beyond any of them is refused with ErrInvalid and changes nothing.
const (
	MaxNameLen          = 64   // manager name length
	MaxFSIDLen          = 64   // fsid length
	MaxModuleNameLen    = 32   // module name length
	MaxMetadataKeys     = 64   // metadata entries per beacon
	MaxMetadataKeyLen   = 64   // metadata key length
	MaxMetadataValueLen = 1024 // metadata value length
	MaxAddrs            = 8    // server addresses per beacon
	MaxAddrLen          = 256  // one host:port
	MaxServices         = 32   // services per beacon
	MaxURLLen           = 512  // one service URL
	MaxModules          = 64   // modules per beacon
	MaxOptions          = 64   // options per module
	MaxTextLen          = 1024 // error strings, option defaults and descriptions
	MaxWhoLen           = 64   // the FailManager argument
	MaxHistoryLimit     = 100000
)

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	moduleRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	keyRE    = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// NameRule and ModuleRule describe the grammars in words, for messages and docs.
const (
	NameRule   = "1 to 64 characters of [A-Za-z0-9_.-], starting with a letter or digit"
	ModuleRule = "1 to 32 characters of [a-z0-9_], starting with a lower-case letter"
)

// ValidateName checks a manager name against NameRule.
func ValidateName(field, name string) error {
	if len(name) == 0 || len(name) > MaxNameLen || !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %s %q: must be %s", ErrInvalid, field, clip(name), NameRule)
	}
	return nil
}

// ValidateModuleName checks a module name against ModuleRule.
func ValidateModuleName(field, name string) error {
	if len(name) == 0 || len(name) > MaxModuleNameLen || !moduleRE.MatchString(name) {
		return fmt.Errorf("%w: %s %q: must be %s", ErrInvalid, field, clip(name), ModuleRule)
	}
	return nil
}

func validateFSID(want, got string, required bool) error {
	if got == "" {
		if required {
			return fmt.Errorf("%w: fsid is required", ErrInvalid)
		}
		return nil
	}
	if len(got) > MaxFSIDLen || !utf8.ValidString(got) {
		return fmt.Errorf("%w: fsid: must be at most %d bytes of UTF-8", ErrInvalid, MaxFSIDLen)
	}
	if got != want {
		return fmt.Errorf("%w: fsid %q is not this cluster's (%s)", ErrWrongFSID, clip(got), want)
	}
	return nil
}

func validateText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s: %d bytes, at most %d allowed", ErrInvalid, field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s: not valid UTF-8", ErrInvalid, field)
	}
	return nil
}

func validateBeacon(b *mgrv1.BeaconRequest) error {
	if err := ValidateName("name", b.GetName()); err != nil {
		return err
	}
	if z := b.GetZone(); z != "" {
		if err := ValidateName("zone", z); err != nil {
			return err
		}
	}
	if b.GetGid() == 0 {
		return fmt.Errorf("%w: gid is required (authenticate first)", ErrInvalid)
	}
	if n := len(b.GetServerAddrs()); n > MaxAddrs {
		return fmt.Errorf("%w: server_addrs: %d entries, at most %d allowed", ErrInvalid, n, MaxAddrs)
	}
	for i, a := range b.GetServerAddrs() {
		if err := validateAddr(fmt.Sprintf("server_addrs[%d]", i), a); err != nil {
			return err
		}
	}
	if n := len(b.GetServices()); n > MaxServices {
		return fmt.Errorf("%w: services: %d entries, at most %d allowed", ErrInvalid, n, MaxServices)
	}
	for k, v := range b.GetServices() {
		if err := ValidateModuleName("services key", k); err != nil {
			return err
		}
		if err := validateURL(fmt.Sprintf("services[%s]", k), v); err != nil {
			return err
		}
	}
	if err := validateModules("available_modules", b.GetAvailableModules()); err != nil {
		return err
	}
	return validateMetadata(b.GetMetadata())
}

func validateAddr(field, a string) error {
	if len(a) == 0 || len(a) > MaxAddrLen {
		return fmt.Errorf("%w: %s: must be host:port of 1 to %d bytes", ErrInvalid, field, MaxAddrLen)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return fmt.Errorf("%w: %s %q: must be host:port", ErrInvalid, field, clip(a))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w: %s %q: port must be 1 to 65535", ErrInvalid, field, clip(a))
	}
	return nil
}

func validateURL(field, s string) error {
	if len(s) == 0 || len(s) > MaxURLLen {
		return fmt.Errorf("%w: %s: must be a URL of 1 to %d bytes", ErrInvalid, field, MaxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "grpc") || u.Host == "" {
		return fmt.Errorf("%w: %s %q: must be an absolute http, https or grpc URL", ErrInvalid, field, clip(s))
	}
	return nil
}

func validateModules(field string, mods []*mgrv1.ModuleInfo) error {
	if len(mods) > MaxModules {
		return fmt.Errorf("%w: %s: %d entries, at most %d allowed", ErrInvalid, field, len(mods), MaxModules)
	}
	seen := make(map[string]bool, len(mods))
	for i, m := range mods {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := ValidateModuleName(f+".name", m.GetName()); err != nil {
			return err
		}
		if seen[m.GetName()] {
			return fmt.Errorf("%w: %s: module %q listed twice", ErrInvalid, f, m.GetName())
		}
		seen[m.GetName()] = true
		if err := validateText(f+".error_string", m.GetErrorString(), MaxTextLen); err != nil {
			return err
		}
		if len(m.GetOptions()) > MaxOptions {
			return fmt.Errorf("%w: %s.options: %d entries, at most %d allowed", ErrInvalid, f, len(m.GetOptions()), MaxOptions)
		}
		for j, o := range m.GetOptions() {
			of := fmt.Sprintf("%s.options[%d]", f, j)
			if len(o.GetName()) == 0 || len(o.GetName()) > MaxMetadataKeyLen || !keyRE.MatchString(o.GetName()) {
				return fmt.Errorf("%w: %s.name %q: must be 1 to %d characters of [A-Za-z0-9_.-]", ErrInvalid, of, clip(o.GetName()), MaxMetadataKeyLen)
			}
			if err := validateText(of+".default_value", o.GetDefaultValue(), MaxTextLen); err != nil {
				return err
			}
			if err := validateText(of+".description", o.GetDescription(), MaxTextLen); err != nil {
				return err
			}
			if err := modopt.Validate(o); err != nil {
				return fmt.Errorf("%w: %s %s: %v", ErrInvalid, of, o.GetName(), err)
			}
		}
	}
	return nil
}

func validateMetadata(md map[string]string) error {
	if len(md) > MaxMetadataKeys {
		return fmt.Errorf("%w: metadata: %d keys, at most %d allowed", ErrInvalid, len(md), MaxMetadataKeys)
	}
	for k, v := range md {
		if len(k) == 0 || len(k) > MaxMetadataKeyLen || !keyRE.MatchString(k) {
			return fmt.Errorf("%w: metadata key %q: must be 1 to %d characters of [A-Za-z0-9_.-]", ErrInvalid, clip(k), MaxMetadataKeyLen)
		}
		if err := validateText("metadata["+k+"]", v, MaxMetadataValueLen); err != nil {
			return err
		}
	}
	return nil
}

// clip shortens user input quoted back in messages.
func clip(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "..."
	}
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	return s
}
