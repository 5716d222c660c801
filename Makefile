# coinop developer and CI entry points. `make test` is what CI runs (.ci/run).

GO       ?= go
# How long each fuzz target runs under `make fuzz`.
FUZZTIME ?= 10s

.PHONY: test dev build fuzz chaos

# Formatting, vet, staticcheck (pinned as a tool in go.mod), then every test
# under the race detector. -count=1 because
# integration tests depend on Postgres and Redis, which the test cache cannot
# see. The harness (internal/testenv) finds or starts both servers.
test:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GO) test -race -count=1 ./...

# The fault suite (chaos/, build tag chaos): two coinop replicas on throwaway
# Postgres and Redis, open-loop purchases with retries, one fault per
# scenario, then the checks; it prints a table of figures. About 2 minutes on
# 2 cores. Without -race: the code under test runs as separately built
# coinop processes, which -race on the suite would not instrument, and a
# race-built coinop is too slow on 2 cores to tell a fault from overload;
# make test covers races. CHAOS_RATE, CHAOS_READ_RATE and CHAOS_PLAYERS
# tune the load.
chaos:
	$(GO) test -tags chaos -count=1 -v -timeout 15m ./chaos/

# A local server with throwaway Postgres and Redis when none are running.
dev:
	$(GO) run ./cmd/coinop dev

build:
	$(GO) build -o bin/coinop ./cmd/coinop

# Every Fuzz* target in the module, one at a time (go test -fuzz takes one
# target in one package), FUZZTIME each. `go test -list` prints a package's
# targets before its "ok <package>" line, which awk pairs them with.
fuzz:
	@list="$$($(GO) test -list '^Fuzz' ./...)" || { echo "$$list"; exit 1; }; \
	targets="$$(echo "$$list" | awk '/^Fuzz/ { n[c++] = $$1; next } /^ok / { for (i = 0; i < c; i++) print $$2, n[i]; c = 0 }')"; \
	if [ -z "$$targets" ]; then echo "no fuzz targets"; exit 0; fi; \
	echo "$$targets" | while read -r pkg target; do \
		echo "== $$pkg $$target ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$pkg" || exit 1; \
	done

# Side-by-side benchmark: coinop against pgbench running its purchase SQL,
# redis-benchmark GET and a minimal fiber handler, on this machine, in one
# run; prints the ratios and writes docs/BENCHMARKS.md. About 6 minutes on
# 2 cores; BENCH_QUICK=1 takes about 2.5. BENCH_PROFILE=1 also samples the
# server with perf. Needs pgbench (postgresql-client) and redis-benchmark
# (redis-tools). Not part of `make test`: it measures, it checks nothing.
.PHONY: bench
bench:
	$(GO) run ./bench
