# mgrplane: `make run` starts a local cluster, `make test` runs every test.
GO      ?= go
BIN     ?= bin
RUN_DIR ?= .run
# Benchmark knobs: make bench BENCHTIME=2s
BENCHTIME ?= 1s
# Executions of each fuzz target in `make fuzz` (a count, not a duration: on
# Go 1.26 a -fuzztime duration can end a clean run with a bare "context
# deadline exceeded", golang/go#75804, fixed in Go 1.27; a count has no
# deadline to race). FUZZTIME=30s still works where that race is acceptable.
FUZZTIME ?= 20000x
# Rounds of random faults in `make chaos`.
ROUNDS ?= 20

# Tag of the image `make images` builds (compose uses mgrplane:dev).
IMAGE ?= mgrplane:dev

.PHONY: all deps build images k8s-creds run test test-short e2e bench bench-check chaos fuzz generate lint check-generated fmt vet clean

all: build

## deps: install the Debian packages the tests use (chromium, prometheus), when missing.
deps:
	./scripts/install-deps.sh

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/...

## images: the image $(IMAGE) FROM scratch with monsim, standby and mgrctl
## (static binaries built here, nothing pulled); prints the sizes.
images:
	GO=$(GO) IMAGE=$(IMAGE) ./scripts/images.sh

## k8s-creds: the CA, certificates and keyring deploy/k8s ships as a Secret
## (deploy/k8s/creds, made once; then kubectl apply -k deploy/k8s).
k8s-creds: build
	MONSIM=$(BIN)/monsim ./scripts/k8s-creds.sh

## run: build and start one monsim and three standbys (x, y, z) on 127.0.0.1.
run: build
	BIN=$(BIN) RUN_DIR=$(RUN_DIR) ./scripts/run.sh

## test: every test, with the race detector (the end-to-end tests build the real binaries).
test:
	$(GO) test -race -count=1 -timeout 20m ./...

test-short:
	$(GO) test -race -short -count=1 ./...

e2e:
	$(GO) test -race -count=1 -v -timeout 15m ./test/e2e/

## bench: the benchmarks, each printed beside its baseline measured in the same run.
BENCH_PKGS = ./services/monsim/... ./services/standby/ ./test/bench/
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem $(BENCH_PKGS)
	$(GO) run ./cmd/chaos --quiet --rounds 10 --seed 2 --out artifacts/chaos-bench && $(GO) run ./cmd/chaos --quiet --ceph --rounds 5 --seed 2 --faults sigterm,fail,kill9,restart,sigstop --out artifacts/chaos-bench-ceph

## bench-check: every benchmark once (CI): a benchmark that no longer runs
## fails here, not first in someone's make bench.
bench-check:
	$(GO) test -run '^$$' -bench . -benchtime 1x $(BENCH_PKGS)

## chaos: ROUNDS rounds of random faults on a local cluster of real processes;
## fails on any overlap (artifacts/chaos: timeline.svg, report.json, logs).
chaos:
	$(GO) run ./cmd/chaos --rounds $(ROUNDS)

## fuzz: run each fuzz target for FUZZTIME (go test fuzzes one target per run).
FUZZ = $(GO) test -run '^$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 500x -fuzz
fuzz:
	$(FUZZ) '^FuzzApply$$' ./services/monsim/internal/mgrmap/
	$(FUZZ) '^FuzzCanonical$$' ./internal/modopt/
	$(FUZZ) '^FuzzRequests$$' ./services/monsim/
	$(FUZZ) '^FuzzConfig$$' ./services/monsim/
	$(FUZZ) '^FuzzConfig$$' ./services/standby/
	$(FUZZ) '^FuzzParseKeyring$$' ./internal/creds/
	$(FUZZ) '^FuzzParseToken$$' ./internal/creds/
	$(FUZZ) '^FuzzArgs$$' ./cmd/mgrctl/

## generate: regenerate the Go code from the protos (buf, protoc-gen-go and
## protoc-gen-go-grpc come from go.mod's tool directives).
generate:
	$(GO) tool buf generate

lint:
	$(GO) tool buf lint

## check-generated: fail when regenerating changes a committed file.
check-generated: generate
	@git diff --exit-code -- api/ || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api/)" || { echo "generate made new files under api/: commit them"; git status --porcelain -- api/; exit 1; }

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt would change:"; echo "$$out"; exit 1; }

vet:
	$(GO) vet ./...

clean:
	rm -rf $(BIN) $(RUN_DIR)
