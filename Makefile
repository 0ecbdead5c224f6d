# Threadline. `make run` serves a local stack, `make test` runs every test against real
# PostgreSQL, PgBouncer and Redis that the tests start themselves. See README.md.

SHELL := /bin/bash
GO ?= go
DATA ?= .data
BIN := bin/threadline
# go test's own package lines and summary are the output; -count=1 never reuses cached results.
TEST_FLAGS ?= -count=1 -timeout 20m
# Test binaries run at once by `go test ./...` (its default is the number of CPUs, 2 here). Many
# tests wait on servers, timeouts and other processes, so a third keeps the cores busier: the
# `go test ./...` phase took 182 and 167 s with 3 against 210 and 203 s with 2 (alternating runs,
# same machine, all passing).
TEST_PACKAGES_AT_ONCE ?= 3

.PHONY: check-space run run-cluster stop backup restore build deps ops-deps client-deps test test-short generate schema check-generated check-ts check-web screenshots lint bench fuzz-short

## run: install what is missing, start the private stack under .data/, migrate, seed, serve on :8080
run: build
	@ops/run.sh

## run-cluster: the private stack as for run, then three instances behind nginx on :8080 over a
## Redis Cluster of three masters (ops/cluster); `go run ./ops/cluster restart` restarts the
## instances one at a time
run-cluster: build deps
	$(GO) run ./ops/stack up -dir $(DATA)
	$(GO) run ./ops/cluster up -dir $(DATA) -bin $(BIN)

## bench: the load scenarios side by side on a private stack under $(BENCH_DATA) (free ports),
## writing BENCHMARKS.md and its charts (at most 15 minutes). BENCH_QUICK=1: a smoke run of at
## most 3 minutes, its report in $(BENCH_DATA)/BENCHMARKS-quick.md. The stack stops afterwards.
BENCH_DATA ?= .data-bench
bench: deps
	@ops/check-space.sh "make bench" 4 "$(BENCH_DATA)" "$$($(GO) env GOCACHE)"
	$(GO) run ./ops/stack up -dir $(BENCH_DATA) -pg-port 0 -pgbouncer-port 0 -redis-port 0
	$(GO) run ./ops/loadtest/cmd/bench -dir $(BENCH_DATA) -bin $(BIN); s=$$?; $(GO) run ./ops/stack down -dir $(BENCH_DATA); exit $$s

## stop: stop the private stack, and the cluster of run-cluster if one runs
stop:
	$(GO) run ./ops/cluster down -dir $(DATA)
	$(GO) run ./ops/stack down -dir $(DATA)

## backup: WAL archiving on the private stack (turned on the first time: PostgreSQL restarts once)
## and a base backup with pg_basebackup, under $(DATA)/backup/ (wal/, base/<finished>/)
backup:
	$(GO) run ./ops/stack backup -dir $(DATA)

## restore TARGET_TIME=2026-12-01T18:45:00Z: the private stack's PostgreSQL as it was then, restored
## from $(DATA)/backup/ into a new data directory ($(DATA)/restore/<time>/) and started on a free
## port beside the stack; prints its URL and how to stop it
restore:
	@test -n "$(TARGET_TIME)" || { echo "usage: make restore TARGET_TIME=2026-12-01T18:45:00Z (RFC 3339, UTC or with an offset)" >&2; exit 2; }
	$(GO) run ./ops/stack restore -dir $(DATA) -target-time '$(TARGET_TIME)'

build:
	$(GO) build -o $(BIN) .

## deps: install PostgreSQL, PgBouncer, Redis and nginx with apt-get if they are missing
deps:
	@ops/stack/install-deps.sh

## ops-deps: install Prometheus (promtool), its exporters, Alertmanager (amtool) and docker-compose with apt-get if missing
ops-deps:
	@ops/install-ops-deps.sh

## client-deps: install Chromium (the GraphiQL browser test) with apt-get if it is missing
client-deps:
	@ops/clients/install-deps.sh

## test: every test against real services, plus the generated-code, vet and staticcheck checks,
## and a short run of each fuzz target
# The two npm checks write separate trees (ops/clients/ts, web/ and the bundle in internal/webapp/dist)
# and read what check-generated wrote, so they run side by side after it; lint compiles the bundle
# into internal/webapp, so it runs after check-web has rewritten it.
# check-space: a full disk fails far from its cause (see the script); a run added about 0.6 GB
# to Go's build cache here, and the tests' servers live under TMPDIR when /dev/shm is small.
test: check-space deps ops-deps client-deps check-generated
	@$(MAKE) --no-print-directory -j2 --output-sync=target check-ts check-web
	@$(MAKE) --no-print-directory lint
	@# The overload test measures the server's capacity, then offers twice that: it runs alone,
	@# since other packages' tests sharing the cores would change the capacity between the two.
	$(GO) test $(TEST_FLAGS) -run '^TestOverloadSheds$$' ./ops/loadtest
	$(GO) test $(TEST_FLAGS) -p $(TEST_PACKAGES_AT_ONCE) -skip '^TestOverloadSheds$$' ./...
	@$(MAKE) --no-print-directory fuzz-short

check-space:
	@ops/check-space.sh "make test" 4 "$$($(GO) env GOCACHE)"
	@ops/check-space.sh "make test" 2 "$${TMPDIR:-/tmp}"

## fuzz-short: each fuzz target for FUZZ_TIME (seeds in each package's testdata/fuzz/; a crash
## found is written there too: commit it as a regression seed once fixed)
# A count, not a duration: Go 1.26's fuzz coordinator can fail a run with a bare "context deadline
# exceeded" when a duration ends while a worker is busy (golang/go#75804, fixed in Go 1.27); a
# count has no deadline to race. 100000 executions take 1 to 5 s per target here. FuzzGate
# measures each document's CPU and allocations (runtime.ReadMemStats stops the world each time):
# about 4,000 executions a second, so it runs a fifth of the count, for about as long as the others.
FUZZ_TIME ?= 100000x
FUZZ_TARGETS := ./internal/chat:FuzzDecodeMessageCursor ./internal/chat:FuzzDecodeConversationCursor \
	./internal/chat:FuzzNormalizeText ./internal/chat:FuzzDecodeSearchCursor ./internal/chat:FuzzSnippet \
	./graph/model:FuzzUnmarshalID \
	./graph/httptransport:FuzzPOST ./graph/httptransport:FuzzGET ./graph/httptransport:FuzzFastDecode \
	./graph/document:FuzzGate:5
fuzz-short:
	@set -e; for t in $(FUZZ_TARGETS); do \
		IFS=: read -r pkg name div <<< "$$t"; n=$(FUZZ_TIME); \
		if [[ -n "$$div" && "$$n" == *x ]]; then n=$$(( $${n%x} / div ))x; fi; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime "$$n" "$$pkg"; \
	done

## test-short: the tests that need no services
test-short:
	$(GO) test -short -count=1 ./...

## generate: regenerate sqlc and gqlgen code, schema.graphql and the genqlient client
generate:
	$(GO) tool sqlc generate
	$(GO) run ./ops/gqlgen
	$(GO) run ./ops/schema
	$(GO) tool genqlient graph/client/genqlient.yaml
	$(GO) run ./ops/trusted

## schema: write the published schema, schema.graphql, from graph/*.graphqls
schema:
	$(GO) run ./ops/schema

## check-generated: regenerating sqlc and gqlgen code must change nothing
check-generated:
	@ops/check-generated.sh

## check-ts: TypeScript codegen over graph/client/operations and tsc --strict on ops/clients/ts (npm)
check-ts:
	@ops/clients/ts/check.sh

## check-web: the web app (web/): npm ci, codegen, tsc --strict, and a rebuild of the bundle
## embedded from internal/webapp/dist; fails if the committed types or bundle are out of date
check-web:
	@web/check.sh

## screenshots: the web app's screenshots beside the README (docs/web/*.png), taken by its
## browser test
screenshots: client-deps
	$(GO) test -count=1 -run 'TestWebAppScreenshots' ./web -screenshots

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
