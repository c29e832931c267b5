package sysinfo

import (
	"errors"
	"maps"
	"runtime"
	"strconv"
	"testing"

	"github.com/mgrplane/mgrplane/internal/version"
)

func TestCollect(t *testing.T) {
	files := map[string]string{
		"/etc/os-release":            "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nID=debian\n",
		"/proc/meminfo":              "MemTotal:       24000000 kB\nMemFree: 1 kB\n",
		"/proc/sys/kernel/osrelease": "6.1.0-test\n",
	}
	tests := map[string]struct {
		files  map[string]string
		kernel string
		host   error
		want   map[string]string
		absent []string
	}{
		"all facts": {
			files:  files,
			kernel: "6.12.0",
			want: map[string]string{
				KeyHostname: "node1", KeyKernel: "6.12.0", KeyDistro: "Debian GNU/Linux 13 (trixie)",
				KeyMemTotalKiB: "24000000", KeyAddr: "10.1.2.3",
			},
		},
		"kernel from proc": {
			files: files,
			want:  map[string]string{KeyKernel: "6.1.0-test"},
		},
		"nothing readable": {
			host:   errors.New("no hostname"),
			absent: []string{KeyHostname, KeyKernel, KeyDistro, KeyMemTotalKiB},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src := Source{
				Hostname: func() (string, error) { return "node1", tc.host },
				ReadFile: func(name string) ([]byte, error) {
					if v, ok := tc.files[name]; ok {
						return []byte(v), nil
					}
					return nil, errors.New("no such file")
				},
				Kernel: func() string { return tc.kernel },
				PID:    func() int { return 42 },
			}
			got := src.Collect("10.1.2.3")
			want := map[string]string{
				KeyOS: runtime.GOOS, KeyArch: runtime.GOARCH, KeyCPUs: strconv.Itoa(runtime.NumCPU()),
				KeyGoVersion: runtime.Version(), KeyMgrplaneVersion: version.Version, KeyPID: "42",
				KeyAddr: "10.1.2.3",
			}
			maps.Copy(want, tc.want)
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for _, k := range tc.absent {
				if v, ok := got[k]; ok {
					t.Errorf("%s = %q, want absent", k, v)
				}
			}
		})
	}
}

func TestHostCollects(t *testing.T) {
	md := Host().Collect("127.0.0.1")
	if md[KeyPID] == "" || md[KeyOS] == "" {
		t.Fatalf("metadata %v lacks pid or os", md)
	}
}
