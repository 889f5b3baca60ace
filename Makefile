# Stillpoint. `make dev` runs a whole cluster in one process; `make test`
# runs every test (race detector on).
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/.bin
export PATH := $(BIN):$(PATH)

BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
STATICCHECK_VERSION := v0.8.2
# protoc-gen-doc writes docs/api/README.md (the API reference) in `make proto`.
PROTOC_GEN_DOC_VERSION := v1.5.1
# grpcurl: the API's end-to-end test drives a pause with it through server
# reflection (cmd/stillpoint/grpcurl_test.go, README "Automation with grpcurl").
GRPCURL_VERSION := v1.9.3

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/stillpoint-dev/stillpoint/internal/version.Version=$(VERSION)

.PHONY: all build test lint breaking proto proto-check bench dev tools e2e clean image compose-up compose-down chaos

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/stillpoint ./cmd/stillpoint

# test: generated code must not drift, lint must be clean, every test passes
# under the race detector (grpcurl for the API's end-to-end test).
test: proto-check lint $(BIN)/grpcurl
	$(GO) test -race -count=1 -timeout 25m ./...

# bench: issue 17's figures (BENCHMARKS.md says what each is). Prints the
# machine (bench/machine.sh), every Go benchmark (BenchmarkLeaseSave: one
# agent's fsync'd lease write, tmpfs vs the shared disk), P4 the alarm
# latency (BenchmarkAlarmLatency), P1 the unavailability per backup point
# next to the 5-second way (BenchmarkUnavailability), then P2 the pause
# fan-out (BenchmarkPauseFanout: 3, 30 and 100 in-process agents, leases on
# per-host tmpfs and on the shared disk, parallel vs sequential), then P3,
# P5, P6 and the scale inputs (below). About 15
# minutes on an idle 2-core box; `make bench-full` is the long run (more
# pauses, 300 agents). MARKDOWN=1 prints the tables as Markdown for
# BENCHMARKS.md.
#   FANOUT_PAUSES, FANOUT_FLAGS (e.g. -fanout.agents=3,30,100,300 -fanout.maxbound=500ms
#   -fanout.maxdrift=1s on a box loaded beyond its cores, where admission
#   rightly refuses pauses at the 100ms defaults;
#   -fanout.disks=host -fanout.perpause); TMPDIR picks the shared disk.
#   UNAVAIL_PAUSES, UNAVAIL_FLAGS (e.g. -unavail.nodes=3,30
#   -unavail.baseline=2 -unavail.sleep=5s -unavail.disk=host).
#   ALARM_INJECTIONS, ALARM_FLAGS (e.g. -alarm.agents=30 -alarm.ntppoll=500ms).
FANOUT_PAUSES ?= 25
FANOUT_FLAGS ?=
UNAVAIL_PAUSES ?= 20
UNAVAIL_FLAGS ?=
ALARM_INJECTIONS ?= 20
ALARM_FLAGS ?=
# P3 BenchmarkRestorePointTightness: TIGHT_PAUSES pauses per NTP path
# (TIGHT_FLAGS e.g. -tight.latency=0,2ms -tight.netem=5ms/1ms -tight.netns=false;
# the netns paths need root and iproute2). P5 BenchmarkFailover:
# FAILOVER_KILLS leader kills. P6 BenchmarkFootprint: real processes of a
# stillpoint it builds (FOOTPRINT_FLAGS e.g. -footprint.agents=30,100
# -footprint.idle=60s). BenchmarkFSMBytesPerOp: the scale inputs
# (SCALE_FLAGS e.g. -scale.agents=3,30,100 -scale.pauses=10).
TIGHT_PAUSES ?= 5
TIGHT_FLAGS ?=
FAILOVER_KILLS ?= 10
FAILOVER_FLAGS ?=
FOOTPRINT_FLAGS ?= -footprint.agents=30 -footprint.idle=15s
SCALE_FLAGS ?=
SLOW_BENCH := BenchmarkPauseFanout|BenchmarkAlarmLatency|BenchmarkUnavailability|BenchmarkRestorePointTightness|BenchmarkFailover|BenchmarkFootprint|BenchmarkFSMBytesPerOp
MARKDOWN ?=
BENCH_ARGS := $(if $(MARKDOWN),-bench.markdown)
bench:
	@bench/machine.sh
	$(GO) test -run '^$$' -bench . -skip '^($(SLOW_BENCH))$$' -benchmem -count 1 ./...
	$(GO) test -run '^$$' -bench '^BenchmarkAlarmLatency$$' -benchtime $(ALARM_INJECTIONS)x -count 1 -timeout 15m ./coordinator -args $(BENCH_ARGS) $(ALARM_FLAGS)
	$(GO) test -run '^$$' -bench '^BenchmarkUnavailability$$' -benchtime $(UNAVAIL_PAUSES)x -count 1 -timeout 15m ./coordinator -args $(BENCH_ARGS) $(UNAVAIL_FLAGS)
	$(GO) test -run '^$$' -bench '^BenchmarkPauseFanout$$' -benchtime $(FANOUT_PAUSES)x -count 1 -timeout 30m ./coordinator -args $(BENCH_ARGS) $(FANOUT_FLAGS)
	$(GO) test -run '^$$' -bench '^BenchmarkRestorePointTightness$$' -benchtime 1x -count 1 -timeout 20m ./coordinator -args $(BENCH_ARGS) -tight.pauses=$(TIGHT_PAUSES) $(TIGHT_FLAGS)
	$(GO) test -run '^$$' -bench '^BenchmarkFailover$$' -benchtime 1x -count 1 -timeout 20m ./coordinator -args $(BENCH_ARGS) -failover.kills=$(FAILOVER_KILLS) $(FAILOVER_FLAGS)
	$(GO) test -run '^$$' -bench '^BenchmarkFootprint$$' -benchtime 1x -count 1 -timeout 30m ./cmd/stillpoint -args $(BENCH_ARGS) $(FOOTPRINT_FLAGS)
	$(GO) test -run '^$$' -bench '^BenchmarkFSMBytesPerOp$$' -benchtime 1x -count 1 -timeout 15m ./coordinator -args $(BENCH_ARGS) $(SCALE_FLAGS)

# bench-full: the figures BENCHMARKS.md records, with enough samples for a
# p99 (100 pauses) and the 300-agent fan-out; about an hour.
bench-full:
	$(MAKE) bench FANOUT_PAUSES=100 UNAVAIL_PAUSES=100 ALARM_INJECTIONS=50 \
		FANOUT_FLAGS='-fanout.agents=3,30,100,300 $(FANOUT_FLAGS)' UNAVAIL_FLAGS='-unavail.baseline=5 $(UNAVAIL_FLAGS)' \
		TIGHT_PAUSES=20 FAILOVER_KILLS=20 FOOTPRINT_FLAGS='-footprint.agents=30,100 -footprint.idle=60s $(FOOTPRINT_FLAGS)' \
		SCALE_FLAGS='-scale.agents=3,30,100 -scale.pauses=10 $(SCALE_FLAGS)'

# bench-check: a short run (small N) of the ratio figures -- P1
# Stillpoint/5s-way, P2 parallel/sequential and per-host/shared disk, P3
# certified ± / true error on a path with 20ms injected latency --
# compared against the committed bench/baseline.json; fails when a checked
# ratio is missing or moved the wrong way by more than its tolerance (25%
# unless the baseline says otherwise). Absolute times are recorded beside
# them, not checked. bench-baseline replaces the baseline's figures with a
# fresh run (do it on a quiet machine and commit bench/baseline.json).
# Add a benchmark to the check: make it write its figures with
# -bench.figures=$(BENCH_FIGURES) in bench-figures below.
BENCH_FIGURES ?= $(or $(TMPDIR),/tmp)/stillpoint-bench-figures.json
BENCH_BASELINE ?= bench/baseline.json

.PHONY: bench-full bench-figures bench-check bench-baseline
bench-figures:
	rm -f $(BENCH_FIGURES)
	$(GO) test -run '^$$' -bench '^BenchmarkUnavailability$$' -benchtime 10x -count 1 -timeout 10m ./coordinator \
		-args -unavail.nodes=3 -unavail.baseline=1 -bench.figures=$(BENCH_FIGURES)
	$(GO) test -run '^$$' -bench '^BenchmarkPauseFanout$$' -benchtime 10x -count 1 -timeout 15m ./coordinator \
		-args -fanout.agents=3,10 -fanout.disks=host,shared -fanout.maxbound=250ms -bench.figures=$(BENCH_FIGURES)
	$(GO) test -run '^$$' -bench '^BenchmarkRestorePointTightness$$' -benchtime 1x -count 1 -timeout 10m ./coordinator \
		-args -tight.pauses=3 -tight.latency=0,20ms -tight.netns=false -bench.figures=$(BENCH_FIGURES)

bench-check: bench-figures
	$(GO) run ./internal/benchtab/benchcheck -baseline $(BENCH_BASELINE) -fresh $(BENCH_FIGURES)

bench-baseline: bench-figures
	$(GO) run ./internal/benchtab/benchcheck -baseline $(BENCH_BASELINE) -fresh $(BENCH_FIGURES) -write \
		-meta commit=$$(git rev-parse --short HEAD) -meta date="$$(date -u '+%Y-%m-%d %H:%M UTC')" \
		-meta machine="$$(nproc) cores, $$(awk '/^MemTotal/{printf "%.1f GiB", $$2/1048576}' /proc/meminfo)" \
		-meta loadavg="$$(cut -d' ' -f1-3 /proc/loadavg)"

# image: the FROM scratch container image stillpoint:dev (static binary).
image: build
	deploy/docker/build.sh

# compose-up: the docker deployment (deploy/docker/compose.yaml: 3 servers,
# 3 Ledger + 2 Auditor simulated nodes with sidecar agents, 3 NTP servers),
# started and waited on until every node would be admitted to a pause. A
# random gossip key goes into deploy/docker/.env the first time.
COMPOSE ?= docker-compose
COMPOSE_PROJECT ?= stillpoint
DC := $(COMPOSE) -p $(COMPOSE_PROJECT) -f deploy/docker/compose.yaml
compose-up: image
	@test -s deploy/docker/.env || printf 'STILLPOINT_GOSSIP_ENCRYPTION_KEY=%s\n' "$$(head -c 32 /dev/urandom | base64)" >deploy/docker/.env
	$(DC) up -d
	COMPOSE='$(COMPOSE)' COMPOSE_PROJECT=$(COMPOSE_PROJECT) deploy/docker/wait-ready.sh
	@echo "now: $(DC) run --rm cli pause --cluster ledger"

compose-down:
	$(DC) down -v --remove-orphans

# chaos: the fault suite (internal/chaos, build tag chaos, docs/chaos.md):
# builds the image, starts the compose deployment as project spchaos (so
# `make compose-down` first: same subnet) and runs RUNS pause cycles per
# scenario with a fault injected from outside (docker kill/start, network
# disconnect, tc netem and iptables via nsenter, an NTP falseticker), judged
# by oracles read from outside; prints the table, fails on any violation.
# Needs root, docker, nsenter, tc (iproute2) and iptables.
# CHAOS_FLAGS e.g. -chaos.scenarios=leader-killed,cli-killed -chaos.seed=N.
RUNS ?= 3
CHAOS_FLAGS ?=
chaos: image
	$(GO) test -tags chaos -count=1 -timeout 180m -run '^TestChaos$$' -v ./internal/chaos \
		-args -chaos.runs=$(RUNS) -chaos.bin=$(BIN)/stillpoint -chaos.compose='$(COMPOSE)' $(CHAOS_FLAGS)

dev: build
	$(BIN)/stillpoint dev

tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-doc $(BIN)/staticcheck $(BIN)/grpcurl

$(BIN)/buf:
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/protoc-gen-doc:
	GOBIN=$(BIN) $(GO) install github.com/pseudomuto/protoc-gen-doc/cmd/protoc-gen-doc@$(PROTOC_GEN_DOC_VERSION)
$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
$(BIN)/grpcurl:
	GOBIN=$(BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

# proto: the Go code under proto/, the API reference docs/api/README.md and
# proto/stillpoint/v1/descriptors.binpb (the descriptors with their comments,
# which server reflection serves: grpcurl describe shows the docs), all
# generated from proto/**/*.proto and committed.
GENERATED := proto docs/api
proto: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-doc
	find proto -name '*.pb.go' -delete
	rm -f docs/api/README.md
	$(BIN)/buf generate
	$(BIN)/buf build --as-file-descriptor-set -o proto/stillpoint/v1/descriptors.binpb

proto-check: proto
	@git diff --exit-code -- $(GENERATED) || (echo "generated protobuf code or docs/api drifted: run 'make proto' and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- $(GENERATED))" || (git status --porcelain -- $(GENERATED); echo "untracked generated files: run 'make proto' and commit" >&2; exit 1)

lint: $(BIN)/buf $(BIN)/staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || (echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit" >&2; $(GO) mod tidy -diff; exit 1)
	$(GO) vet ./...
	$(BIN)/staticcheck ./...
	$(BIN)/buf lint
	@$(MAKE) --no-print-directory breaking

# breaking: `buf breaking` (buf.yaml's rules) over proto/, offline from the
# local git history, against BUF_AGAINST: any git ref, e.g. the base of a
# change (`make lint BUF_AGAINST=origin/main`, or
# BUF_AGAINST=$(git merge-base HEAD origin/main) in CI). Empty (the default):
# the newest release tag when there is one, else HEAD when proto/ has
# uncommitted changes (what you are about to commit), otherwise HEAD~1, which
# checks only what the last commit changed: pass a base to check a branch.
# The ref is resolved to a commit here; a shallow clone that cannot reach it
# is told to `git fetch --unshallow`.
BUF_AGAINST ?=
breaking: $(BIN)/buf
	@ref='$(BUF_AGAINST)'; \
	if [ -z "$$ref" ]; then \
		tag=$$(git describe --tags --abbrev=0 2>/dev/null); \
		if [ -n "$$tag" ]; then ref="$$tag"; \
		elif [ -n "$$(git status --porcelain -- proto)" ]; then ref=HEAD; \
		else ref=HEAD~1; fi; \
	fi; \
	if ! sha=$$(git rev-parse -q --verify "$$ref^{commit}"); then \
		if [ "$$(git rev-parse --is-shallow-repository)" = true ]; then \
			echo "buf breaking: base $$ref is not in this clone: it is shallow ($$(git rev-list --count HEAD) commit(s) deep)." >&2; \
			echo "  fix: git fetch --unshallow (or fetch the base, e.g. git fetch origin main), then pass BUF_AGAINST=<base ref>" >&2; \
		else \
			echo "buf breaking: base $$ref does not name a commit in this repository (git rev-parse $$ref failed)" >&2; \
		fi; \
		exit 1; \
	fi; \
	echo "buf breaking --against $$ref ($$sha)"; \
	$(BIN)/buf breaking --against ".git#ref=$$sha,depth=$$(git rev-list --count HEAD $$sha),subdir=proto"

clean:
	rm -rf $(BIN)
