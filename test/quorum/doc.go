// Package quorum holds the end-to-end tests of a quorum of monitors: three
// real monsim processes forming one raft quorum, three standbys given every
// monitor's address, a watcher (`mgrctl -o json watch`) on each monitor and
// an admin client changing the map, while the test kills, restarts,
// partitions, adds and removes monitors. Every map the watchers saw and
// every admin call's result are then checked: watches ordered, gap-free and
// without duplicates, one map per epoch across all monitors, and the history
// linearizable (github.com/anishathalye/porcupine).
//
// Run as root, each monitor and the clients live in network namespaces made
// by the test (addresses 10.213.0.x, no route out of them), a partition sets
// the leader's link down, and the leader is also frozen by SIGSTOP;
// otherwise (or with MGRPLANE_QUORUM_NET=loopback) everything runs on
// 127.0.0.1 and the partition is a SIGSTOP of the leader. The test log says
// which. Run them with
//
//	go test -race -count=1 ./test/quorum/
//
// MGRPLANE_QUORUM_KEEP=1 keeps the logs, data dirs and history of a passing
// run too (a failing run always keeps them). The end-to-end test is skipped
// with -short; the history checker's own tests still run.
package quorum
