package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
)

func testPurchase() purchaseSQL {
	return purchaseSQL{
		PlayerPrefix: "pgb-", Players: 50, ItemID: "potion", Currency: "gold", Price: 100,
		Currencies: []string{"gold", "gems"}, CatalogVersion: 1, KeyWait: 5 * time.Second,
	}
}

func TestPgLiteral(t *testing.T) {
	tests := []struct{ in, want string }{
		{"purchase", "'purchase'"},
		{"it's", "'it''s'"},
		{"POST /v1/purchases", "'POST /v1/purchases'"},
		{"system:purchases", `E'system\x3apurchases'`},
		{`{"a":"b"}`, `'{"a":"b"}'`}, // a colon before a quote is no variable
		{`{"n":1,"s":"x\y"}`, `E'{"n"\x3a1,"s"\x3a"x\\y"}'`},
		{"a::text", `E'a\x3a\x3atext'`},
		{"trailing:", "'trailing:'"},
	}
	for _, tt := range tests {
		if got := pgLiteral(tt.in); got != tt.want {
			t.Errorf("pgLiteral(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// pgbenchVariables lists the ":name" references pgbench would substitute
// in the SQL of a script, scanning as pgbench does: "::" is a cast, and
// quotes do not protect anything.
func pgbenchVariables(script string) []string {
	var vars []string
	for _, line := range strings.Split(script, "\n") {
		if strings.HasPrefix(line, `\`) {
			continue // a meta-command
		}
		for i := 0; i < len(line); i++ {
			if line[i] != ':' {
				continue
			}
			if i+1 < len(line) && line[i+1] == ':' {
				i++
				continue
			}
			j := i + 1
			for j < len(line) && isVarChar(line[j]) {
				j++
			}
			if j > i+1 {
				vars = append(vars, line[i+1:j])
			}
		}
	}
	return vars
}

func TestPurchaseScriptUsesOnlyItsOwnVariables(t *testing.T) {
	script := testPurchase().Script()
	got := slices.Sorted(maps.Keys(setOf(pgbenchVariables(script))))
	if want := []string{"client_id", "k", "pid"}; !slices.Equal(got, want) {
		t.Fatalf("pgbench would substitute %v in\n%s\nwant only %v", got, script, want)
	}
	for _, want := range []string{`\set pid random(1, 50)`, `\set k random(1, 9223372036854775806)`, `\startpipeline`, "INSERT INTO ledger_entries", "COMMIT;"} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
}

func setOf(ss []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range ss {
		m[s] = true
	}
	return m
}

// substitute replaces pgbench variables with SQL literals, as pgbench's
// simple protocol does, so a test can run the statement with pgx.
func substitute(script string, vals map[string]string) string {
	var sql []string
	for _, line := range strings.Split(script, "\n") {
		if strings.HasPrefix(line, `\`) {
			continue
		}
		for name, v := range vals {
			line = strings.ReplaceAll(line, ":"+name+"::", "'"+v+"'::")
		}
		sql = append(sql, line)
	}
	return strings.TrimSuffix(strings.TrimSpace(strings.Join(sql, "\n")), ";")
}

// TestPurchaseScriptIsTheServersStatement buys a potion once through the
// server's own code (entitlements.Ledger.Purchase) and once with the
// pgbench script's statements, then checks that Postgres recorded the same
// thing: same outcome, ledger entries, idempotency fingerprint, response
// fields and metadata. If the writer changes what it records, this fails
// and the pgbench baseline must follow.
func TestPurchaseScriptIsTheServersStatement(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.NewPool(t)
	doc, err := catalog.Parse(benchCatalog, catalog.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := catalog.NewSnapshot(1, time.Now(), doc)
	if err != nil {
		t.Fatal(err)
	}
	p := testPurchase()
	p.Players = 2
	if err := fundPgbenchPlayers(ctx, pool, p); err != nil {
		t.Fatal(err)
	}

	ledger := entitlements.New(pool, staticCatalog{snap})
	server, err := ledger.Purchase(ctx, entitlements.PurchaseRequest{
		PlayerID: "pgb-1", IdempotencyKey: "server-1", ItemID: "potion", Quantity: 1,
		Price: catalog.Price{Currency: "gold", Amount: 100},
	})
	if err != nil {
		t.Fatal(err)
	}
	sql := substitute(p.Script(), map[string]string{"pid": "2", "client_id": "7", "k": "42"})
	if _, err := pool.Exec(ctx, sql); err != nil {
		t.Fatalf("running the script's statements: %v\n%s", err, sql)
	}
	var response []byte
	if err := pool.QueryRow(ctx, `SELECT body FROM idempotency_keys WHERE player_id = 'pgb-2' AND key = 'pgb-7-42'`).Scan(&response); err != nil {
		t.Fatal(err)
	}

	// Responses: the same fields, equal but for the per-purchase id and the
	// balances, which the script cannot compute.
	var fromServer, fromScript map[string]any
	if err := json.Unmarshal(server.Body, &fromServer); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(response, &fromScript); err != nil {
		t.Fatal(err)
	}
	if fromScript["purchase_id"] != "pgb-7-42" {
		t.Errorf("script purchase_id %v, want pgb-7-42", fromScript["purchase_id"])
	}
	for _, m := range []map[string]any{fromServer, fromScript} {
		delete(m, "purchase_id")
		m["balances"] = "…"
	}
	if a, b := mustJSON(t, fromServer), mustJSON(t, fromScript); a != b {
		t.Errorf("responses differ:\nserver %s\nscript %s", a, b)
	}
	var versionBehind bool
	if err := pool.QueryRow(ctx, `SELECT p.version < t.id FROM players p JOIN ledger_transactions t USING (player_id)
		WHERE p.player_id = 'pgb-2' AND t.kind = 'purchase'`).Scan(&versionBehind); err != nil || versionBehind {
		t.Errorf("script left the player's version behind its purchase (%v)", err)
	}

	type recorded struct {
		Kind, Scope, Outcome string
		Fingerprint          []byte
		Metadata             map[string]any
		Entries              []string
	}
	read := func(player, key string) recorded {
		t.Helper()
		var r recorded
		err := pool.QueryRow(ctx, `
			SELECT t.kind, i.scope, i.outcome, i.fingerprint, t.metadata,
			       array_agg(e.account || ' ' || e.asset_type || ' ' || e.asset_id || ' ' || e.amount
			                 ORDER BY e.asset_type, e.amount)
			FROM idempotency_keys i
			JOIN ledger_transactions t ON t.player_id = i.player_id AND t.metadata->>'idempotency_key' = i.key
			JOIN ledger_entries e ON e.transaction_id = t.id
			WHERE i.player_id = $1 AND i.key = $2
			GROUP BY t.kind, i.scope, i.outcome, i.fingerprint, t.metadata`, player, key,
		).Scan(&r.Kind, &r.Scope, &r.Outcome, &r.Fingerprint, &r.Metadata, &r.Entries)
		if err != nil {
			t.Fatalf("reading what %s/%s recorded: %v", player, key, err)
		}
		delete(r.Metadata, "idempotency_key")
		for i, e := range r.Entries {
			r.Entries[i] = strings.ReplaceAll(e, player, "PLAYER")
		}
		return r
	}
	a, b := read("pgb-1", "server-1"), read("pgb-2", "pgb-7-42")
	if mustJSON(t, a) != mustJSON(t, b) {
		t.Errorf("recorded differently:\nserver %s\nscript %s", mustJSON(t, a), mustJSON(t, b))
	}
	want := sha256.Sum256([]byte(`{"item_id":"potion","quantity":1,"price":{"currency":"gold","amount":100}}`))
	if !bytes.Equal(b.Fingerprint, want[:]) {
		t.Errorf("fingerprint %x, want %x", b.Fingerprint, want)
	}
}

type staticCatalog struct{ snap *catalog.Snapshot }

func (s staticCatalog) Current() *catalog.Snapshot { return s.snap }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParsePgbenchLog(t *testing.T) {
	// client_id transaction_no time script_no time_epoch time_us schedule_lag
	log := strings.Join([]string{
		"0 0 1000 0 1700000000 001200 200", // due at .000000
		"1 0 2000 0 1700000000 202000 0",
		"0 1 failed 0 1700000001 300000 10",
		"1 1 3000 0 1700000001 500000 97000",
		"",
	}, "\n")
	m, err := parsePgbenchLog(strings.NewReader(log), 0, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Requests != 4 || m.Errors != 1 || m.Achieved != 2 {
		t.Fatalf("requests %d errors %d achieved %v, want 4, 1, 2", m.Requests, m.Errors, m.Achieved)
	}
	// Latencies with lag: 1.2 ms, 2 ms, 100 ms.
	if m.P50 < 1990*time.Microsecond || m.P50 > 2010*time.Microsecond {
		t.Errorf("p50 %v, want 2ms", m.P50)
	}
	if m.P99 < 99*time.Millisecond || m.P99 > 101*time.Millisecond {
		t.Errorf("p99 %v, want 100ms (time plus schedule lag)", m.P99)
	}
}

func TestParsePgbenchLogLeavesOutTheWarmup(t *testing.T) {
	log := strings.Join([]string{
		"0 0 150000 0 1700000000 150000", // due at 0.0 s: cold backend, left out
		"1 0 900000 0 1700000001 000000", // due at 0.1 s: left out
		"0 1 2000 0 1700000001 202000",   // due at 1.2 s
		"1 1 3000 0 1700000001 503000",   // due at 1.5 s
	}, "\n")
	m, err := parsePgbenchLog(strings.NewReader(log), time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Requests != 2 || m.P99 > 3010*time.Microsecond || m.Achieved != 2 {
		t.Fatalf("got %+v, want the two transactions after the warmup", m)
	}
}

func TestParsePgbenchLogWithoutRateHasNoLag(t *testing.T) {
	m, err := parsePgbenchLog(strings.NewReader("0 0 1500 0 1700000000 100\n"), 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.P50 < 1490*time.Microsecond || m.P50 > 1510*time.Microsecond {
		t.Fatalf("p50 %v, want 1.5ms", m.P50)
	}
}

func TestParsePgbenchLogRejectsGarbage(t *testing.T) {
	if _, err := parsePgbenchLog(strings.NewReader("not a log line\n"), 0, time.Second); err == nil {
		t.Fatal("want an error")
	}
}
