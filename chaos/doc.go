// Package chaos is coinop's fault suite, run by `make chaos` (build tag
// chaos, so `go test ./...` and `make test` skip it). It builds the coinop
// binary, starts throwaway Postgres and Redis (internal/localsvc), a TCP
// proxy in front of Postgres that can blackhole traffic, and two `coinop
// serve` replicas; it drives open-loop purchases with client retries on the
// same Idempotency-Key, injects one fault per scenario (kill -9 a replica,
// SIGTERM under load, Postgres immediate stop, Redis kill, FLUSHALL, Redis
// restored from an older snapshot, a Postgres blackhole), and checks that no
// acknowledged purchase was lost or doubled, no balance went negative, the
// ledger audit holds, both replicas serve exactly Postgres's holdings once
// the fault is over, no 5xx other than 503 was answered, and throughput came
// back within 10 s of the fault healing. It prints a table of its figures.
//
// It owns no tables or Redis keys of its own and talks to coinop over HTTP
// only, except for reading balances straight from Postgres to judge it.
package chaos
