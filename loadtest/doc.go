// Package loadtest is the load generator studios run against a coinop
// deployment before launch (`coinop loadtest`).
//
// A run has three phases:
//
//  1. Setup creates players lt-<runid>-<n> (tokens minted from the shared JWT
//     secret, or players read from a --tokens file), funds them through the
//     admin grant API and reads the live catalog to pick what can be bought
//     over and over: consumables without a per-player limit and bundles of
//     them, on sale for the whole run.
//  2. Load drives a weighted mix of catalog (with ETags), wallet, entitlement,
//     purchase (with idempotent retries and stale prices), server-to-server,
//     server posting (awards, spends, consumptions with the game-server key,
//     retried with the same key while unanswered) and receipt requests. The open model (default) sends requests at a
//     target arrival rate and measures latency from the time each request was
//     due, so a slow server cannot hide its own queueing (no coordinated
//     omission); the closed model runs N virtual players back to back.
//     Latencies go into HDR histograms per endpoint.
//  3. Verification compares what the tool saw succeed with each player's
//     ledger, wallet and entitlements read back from the server, and with the
//     admin audit, to catch lost, duplicated or unexplained grants, negative
//     balances and caches that disagree with the ledger.
//
// Around that core:
//
//   - Scenarios (scenario.go): player archetypes with session lengths and
//     action weights, purchases weighted over the live catalog, and arrival
//     curves of steady, ramp and spike segments, with errors that name their
//     path in the YAML. Every report carries the run's configuration, and
//     --replay runs it again with the same request sequence (replay.go).
//   - Capacity (capacity.go): --find-max searches for the highest rate at
//     which every --slo holds, as make bench does, and states it as CCU and
//     headroom, with what broke first.
//   - Several load machines: --split k/n sends every n-th request, and
//     `coinop loadtest merge` combines the reports with HDR histograms
//     merged exactly (merge.go).
//   - The server's side from /metrics during the run (servermetrics.go) and
//     --baseline comparison per endpoint (baseline.go).
//   - The creator program (creators.go): setup creates creators and has a
//     share of the players set their codes; tips mix in with the other
//     actions; verification holds every creator's earnings, to the
//     micro-unit, against the exact sum of the shares of the purchases,
//     spends and tips the tool saw succeed, with the server's arithmetic
//     repeated here (not imported) and its share and fee given by flags.
//   - Store chaos (chaos.go, applefake.go): fake App Store receipts minted
//     from the fake store's CA files, refund waves delivered duplicated,
//     shuffled, abandoned and ahead of their redemption, then a check that
//     every redemption and refund had exactly one effect; and a fake App
//     Store Server API (storeapi.go) the server confirms redemptions with,
//     injecting seeded latency, 5xx answers and timeouts.
//
// Every run is bounded by a duration and by a request budget and stops by
// itself. The default target is loopback; any other target is allowed (studios
// test staging) but announced with a warning.
//
// A typical run:
//
//	COINOP_JWT_SECRET=... COINOP_ADMIN_TOKEN=... coinop loadtest \
//	    --rate 200 --duration 30s --players 50 \
//	    --slo 'purchase:p99<25ms,errors<0.1%' --out report.json --html report.html
//
// It exits 0 when thresholds hold and verification finds nothing, 1 when a
// threshold fails or verification finds a problem, and 2 for usage or setup
// errors and interrupted runs.
//
// The package speaks HTTP only and must not import anything else from the
// coinop module: it tests the server from the outside, exactly as a game
// client, a game server and an operator would, and a shared type would let a
// server bug agree with itself. imports_test.go enforces this.
package loadtest
