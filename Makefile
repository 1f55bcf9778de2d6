# Lark: the two commands a newcomer runs are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin/lark
LARK_DATA_DIR ?= $(CURDIR)/data
export LARK_DATA_DIR

.PHONY: run test build deps bench bench-store vet

# deps installs what the machine lacks: the Postgres server binaries (Lark runs
# its own private cluster from them). Nothing is installed when present.
deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
		echo "installing postgresql server binaries"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; fi; \
	fi

build:
	$(GO) build -o $(BIN) ./cmd/lark

run: deps build
	./$(BIN) serve

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...

# bench-store: the embedded event store's benchmarks (go test -bench).
bench-store:
	$(GO) test -run '^$$' -bench . -benchtime 3s ./adapters/esdbserver/...

# bench: whole-system load (see README "Benchmarks"): starts `lark serve` on
# embedded defaults in a temporary directory and drives it over HTTP.
BENCH_DURATION ?= 30s
bench: deps build
	$(GO) run ./cmd/larkbench -lark $(BIN) -duration $(BENCH_DURATION)
