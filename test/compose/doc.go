// Package compose holds the end-to-end test of the docker compose cluster
// (docker-compose.yml at the top of the repository) as users run it: the
// image built by scripts/images.sh, `docker compose up`, mgrctl on the host
// through the published ports. The test kills the active manager's
// container, cuts the monitor leader off the network, restarts a monitor and
// recreates the standbys one by one; after each it checks that exactly one
// manager serves as active (the chaos harness's prober on the host ports),
// that no acknowledged map change was lost and that the epochs seen by a
// `mgrctl watch` are continuous.
//
// It runs in `make test` when a Docker engine answers and Compose (the v2
// plugin or docker-compose v1) is installed; otherwise, and with -short, it
// is skipped with the reason printed. Each run uses its own compose project,
// image tag and free host ports, and removes them (`down -v`) when it ends.
// MGRPLANE_COMPOSE_KEEP=1 leaves a failing run's containers up to look at.
//
//	go test -race -count=1 -v ./test/compose/
package compose
