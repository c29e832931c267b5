// Package e2e holds the end-to-end tests of mgrplane: they build the real
// monsim, standby and mgrctl binaries once, start them as processes on free
// loopback ports, and check what a user sees through mgrctl, grpcurl
// (`go tool grpcurl`), HTTP and signals. Run them with
//
//	go test -race -count=1 ./test/e2e/
//
// They are skipped with -short.
package e2e
