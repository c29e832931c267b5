// Package sysinfo collects the facts a manager reports about its host in
// every beacon, like Ceph's collect_sys_info.
package sysinfo

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/mgrplane/mgrplane/internal/version"
)

// Metadata keys, as the monitor stores them and `mgrctl metadata` shows them.
const (
	KeyHostname        = "hostname"
	KeyOS              = "os"
	KeyArch            = "arch"
	KeyKernel          = "kernel"
	KeyDistro          = "distro"
	KeyCPUs            = "cpus"
	KeyMemTotalKiB     = "mem_total_kib"
	KeyGoVersion       = "go_version"
	KeyMgrplaneVersion = "mgrplane_version"
	KeyPID             = "pid"
	KeyAddr            = "addr"
)

// Source reads the host facts; tests replace its fields. The zero value is
// not useful: use Host.
type Source struct {
	Hostname func() (string, error)
	// ReadFile reads /proc and /etc files.
	ReadFile func(name string) ([]byte, error)
	// Kernel returns the kernel release (uname -r), or "" when unknown.
	Kernel func() string
	PID    func() int
}

// Host is the Source of the running process.
func Host() Source {
	return Source{Hostname: os.Hostname, ReadFile: os.ReadFile, Kernel: kernelRelease, PID: os.Getpid}
}

// Collect returns the metadata map; addr is the host the manager advertises.
// Facts that cannot be read are left out rather than guessed.
func (s Source) Collect(addr string) map[string]string {
	md := map[string]string{
		KeyOS:              runtime.GOOS,
		KeyArch:            runtime.GOARCH,
		KeyCPUs:            strconv.Itoa(runtime.NumCPU()),
		KeyGoVersion:       runtime.Version(),
		KeyMgrplaneVersion: version.Version,
		KeyPID:             strconv.Itoa(s.PID()),
		KeyAddr:            addr,
	}
	if h, err := s.Hostname(); err == nil && h != "" {
		md[KeyHostname] = h
	}
	k := s.Kernel()
	if k == "" {
		if b, err := s.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
			k = strings.TrimSpace(string(b))
		}
	}
	if k != "" {
		md[KeyKernel] = k
	}
	if b, err := s.ReadFile("/etc/os-release"); err == nil {
		if d := osReleaseValue(b, "PRETTY_NAME"); d != "" {
			md[KeyDistro] = d
		}
	}
	if b, err := s.ReadFile("/proc/meminfo"); err == nil {
		if kib, ok := memTotalKiB(b); ok {
			md[KeyMemTotalKiB] = strconv.FormatUint(kib, 10)
		}
	}
	return md
}

// osReleaseValue returns the unquoted value of key in an os-release file.
func osReleaseValue(b []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || k != key {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			return uq
		}
		return strings.Trim(v, `"'`)
	}
	return ""
}

// memTotalKiB reads the MemTotal line of /proc/meminfo ("MemTotal: 123 kB").
func memTotalKiB(b []byte) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
