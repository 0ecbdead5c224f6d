# Threadline. `make run` serves a local stack, `make test` runs every test against real
# PostgreSQL, PgBouncer and Redis that the tests start themselves. See README.md.

SHELL := /bin/bash
GO ?= go
DATA ?= .data
BIN := bin/threadline
# go test's own package lines and summary are the output; -count=1 never reuses cached results.
TEST_FLAGS ?= -count=1 -timeout 20m

.PHONY: run stop build deps test test-short generate check-generated lint bench

## run: install what is missing, start the private stack under .data/, migrate, seed, serve on :8080
run: build
	@ops/run.sh

## stop: stop the private stack
stop:
	$(GO) run ./ops/stack down -dir $(DATA)

build:
	$(GO) build -o $(BIN) .

## deps: install PostgreSQL, PgBouncer and Redis with apt-get if they are missing
deps:
	@ops/stack/install-deps.sh

## test: every test against real services, plus the generated-code, vet and staticcheck checks
test: deps check-generated lint
	$(GO) test $(TEST_FLAGS) ./...

## test-short: the tests that need no services
test-short:
	$(GO) test -short -count=1 ./...

## generate: regenerate sqlc and gqlgen code
generate:
	$(GO) tool sqlc generate
	$(GO) tool gqlgen generate

## check-generated: regenerating sqlc and gqlgen code must change nothing
check-generated:
	@ops/check-generated.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
