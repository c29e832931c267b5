//go:build !unix

package sysinfo

// kernelRelease is unknown off unix.
func kernelRelease() string { return "" }
