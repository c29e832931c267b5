//go:build unix

package sysinfo

import "golang.org/x/sys/unix"

// kernelRelease returns uname's release field.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
