package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
)

// purchaseSQL describes one purchase the way the server's ledger writer
// sends it when the purchase travels alone (entitlements.Ledger.apply with
// a batch of one): one unit of a consumable item at one price, with a fresh
// idempotency key, for a player chosen uniformly among Players, as `coinop
// loadtest` chooses its players. The players hold the item already, so both
// balances are updates, as in the server's steady state.
type purchaseSQL struct {
	PlayerPrefix   string // players are <prefix>1 … <prefix>N
	Players        int
	ItemID         string
	Currency       string
	Price          int64
	Currencies     []string // the catalog's currency ids, in catalog order
	CatalogVersion int64
	KeyWait        time.Duration // COINOP_IDEMPOTENCY_WAIT
}

// Script returns the pgbench script: two \set lines and the writer's
// statements in its two pipelined round trips (reads under the player lock;
// then one statement of CTEs that writes everything, and COMMIT). Values the server computes per request (the
// idempotency key, the response body and metadata around it) are built in
// SQL from pgbench's random(); the ledger transaction id the writer reserves
// with nextval is currval here, since pgbench cannot carry a value from one
// pipeline to the next. The response body the server builds in Go is a
// literal of the same shape.
func (p purchaseSQL) Script() string {
	// The fingerprint is sha256 of the request as the server encodes it.
	req, _ := json.Marshal(struct {
		ItemID   string `json:"item_id"`
		Quantity int64  `json:"quantity"`
		Price    price  `json:"price"`
	}{p.ItemID, 1, price{p.Currency, p.Price}})
	sum := sha256.Sum256(req)
	priceJSON, _ := json.Marshal(price{p.Currency, p.Price})
	balances := map[string]int64{}
	for _, c := range p.Currencies {
		balances[c] = 0
	}
	balances[p.Currency] = 999999900
	balancesJSON, _ := json.Marshal(balances)
	// Go marshals the server's map[string]any with sorted keys; these
	// fragments keep that order around the per-transaction key.
	body := func(key string) string {
		return fmt.Sprintf("%s || %s || %s",
			pgLiteral(fmt.Sprintf(`{"balances":%s,"entitlements":[{"item_id":%q,"quantity":2}],"item_id":%q,"price":%s,"purchase_id":"`,
				balancesJSON, p.ItemID, p.ItemID, priceJSON)),
			key,
			pgLiteral(`","quantity":1}`))
	}
	metadata := func(key string) string {
		return fmt.Sprintf("%s || %s || %s",
			pgLiteral(fmt.Sprintf(`{"catalog_version":%d,"idempotency_key":"`, p.CatalogVersion)),
			key,
			pgLiteral(fmt.Sprintf(`","item_id":%q,"price":%s,"quantity":1}`, p.ItemID, priceJSON)))
	}
	// One key per transaction: the client id keeps clients apart and a
	// 63-bit random number keeps transactions apart.
	key := "('pgb-' || :client_id::text || '-' || :k::text)"
	player := fmt.Sprintf("(%s || :pid::text)", pgLiteral(p.PlayerPrefix))
	scope := pgLiteral("POST /v1/purchases")
	tx := "currval(pg_get_serial_sequence('ledger_transactions', 'id'))"
	cur, item := pgLiteral(p.Currency), pgLiteral(p.ItemID)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("\\set pid random(1, %d)", p.Players)
	w("\\set k random(1, 9223372036854775806)")
	w("\\startpipeline")
	w("BEGIN;")
	w("WITH cfg AS (SELECT set_config('lock_timeout', '%d', true)) INSERT INTO players AS p (player_id) SELECT u.id FROM unnest(ARRAY[%s]) AS u(id), cfg ORDER BY 1 ON CONFLICT (player_id) DO UPDATE SET version = p.version RETURNING p.player_id, p.version;", p.KeyWait.Milliseconds(), player)
	w("SELECT player_id, asset_type, asset_id, quantity FROM balances WHERE player_id = ANY(ARRAY[%s]) AND (asset_type = 'currency' OR asset_id = ANY(ARRAY[%s]));", player, item)
	w("SELECT i.player_id, i.scope, i.key, i.fingerprint, i.outcome, coalesce(i.body, convert_to(i.response::text, 'UTF8')) FROM unnest(ARRAY[%s], ARRAY[%s], ARRAY[%s]) AS k(player_id, scope, key) JOIN idempotency_keys i USING (player_id, scope, key);", player, scope, key)
	w("SELECT nextval(pg_get_serial_sequence('ledger_transactions', 'id')) FROM generate_series(1, 1);")
	w("\\endpipeline")
	w("\\startpipeline")
	w("WITH k AS (INSERT INTO idempotency_keys (player_id, scope, key, fingerprint, outcome, body) SELECT * FROM unnest(ARRAY[%s], ARRAY[%s], ARRAY[%s], ARRAY['\\x%s'::bytea], ARRAY['ok'], ARRAY[convert_to(%s, 'UTF8')])),",
		player, scope, key, hex.EncodeToString(sum[:]), body(key))
	w("t AS (INSERT INTO ledger_transactions (id, player_id, kind, reference, metadata) OVERRIDING SYSTEM VALUE SELECT id, player_id, kind, reference, metadata::jsonb FROM unnest(ARRAY[%s], ARRAY[%s], ARRAY['purchase'], ARRAY[%s], ARRAY[%s]) AS t(id, player_id, kind, reference, metadata)),",
		tx, player, key, metadata(key))
	w("e AS (INSERT INTO ledger_entries (transaction_id, account, asset_type, asset_id, amount) SELECT * FROM unnest(ARRAY[%[1]s, %[1]s, %[1]s, %[1]s], ARRAY['player:' || %[2]s, %[7]s, 'player:' || %[2]s, %[7]s], ARRAY['currency', 'currency', 'item', 'item'], ARRAY[%[3]s, %[3]s, %[4]s, %[4]s], ARRAY[%[5]d, %[6]d, 1, -1]::bigint[])),",
		tx, player, cur, item, -p.Price, p.Price, pgLiteral("system:purchases"))
	w("u AS (UPDATE balances b SET quantity = b.quantity + c.delta FROM unnest(ARRAY[%[1]s, %[1]s], ARRAY['currency', 'item'], ARRAY[%[2]s, %[3]s], ARRAY[%[4]d, 1]::bigint[]) AS c(player_id, asset_type, asset_id, delta) WHERE b.player_id = ANY(ARRAY[%[1]s]) AND b.player_id = c.player_id AND b.asset_type = c.asset_type AND b.asset_id = c.asset_id),",
		player, cur, item, -p.Price)
	w("v AS (UPDATE players p SET version = v.version FROM unnest(ARRAY[%[1]s], ARRAY[%[2]s]) AS v(player_id, version) WHERE p.player_id = ANY(ARRAY[%[1]s]) AND p.player_id = v.player_id)", player, tx)
	w("SELECT 1;")
	w("COMMIT;")
	w("\\endpipeline")
	return b.String()
}

type price struct {
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
}

// pgLiteral quotes s as an SQL string literal that pgbench leaves alone.
// pgbench replaces every ":name" in a script with a variable, even inside
// quotes, so a colon followed by a letter, digit or underscore is written
// as the escape \x3a inside an E'…' literal.
func pgLiteral(s string) string {
	risky := false
	for i := 0; i+1 < len(s); i++ {
		if s[i] == ':' && isVarChar(s[i+1]) {
			risky = true
			break
		}
	}
	if !risky {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	var b strings.Builder
	b.WriteString("E'")
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`''`)
		case ':':
			b.WriteString(`\x3a`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteString("'")
	return b.String()
}

func isVarChar(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// fundPgbenchPlayers gives every pgbench player enough currency for any
// run, and one unit of the item, through the server's own ledger like an
// admin grant, so the purchases never fail for lack of funds and update
// both balance rows as the server's steady state does.
func fundPgbenchPlayers(ctx context.Context, db *pgxpool.Pool, p purchaseSQL) error {
	doc, err := catalog.Parse(benchCatalog, catalog.FormatYAML)
	if err != nil {
		return err
	}
	snap, err := catalog.NewSnapshot(p.CatalogVersion, time.Now(), doc)
	if err != nil {
		return err
	}
	l := entitlements.New(db, fixedCatalog{snap})
	for i := 1; i <= p.Players; i++ {
		player := p.PlayerPrefix + strconv.Itoa(i)
		if _, err := l.Grant(ctx, entitlements.GrantRequest{PlayerID: player, IdempotencyKey: "bench-fund", Reason: "bench",
			Currencies: map[string]int64{p.Currency: catalog.MaxAmount}, Items: map[string]int64{p.ItemID: 1}}); err != nil {
			return fmt.Errorf("funding %s: %w", player, err)
		}
	}
	return nil
}

type fixedCatalog struct{ snap *catalog.Snapshot }

func (s fixedCatalog) Current() *catalog.Snapshot { return s.snap }

// pgbenchRunner runs the purchase script at a fixed rate (pgbench --rate,
// which measures latency from each transaction's scheduled start, so a
// saturated database cannot hide its queue) with Clients connections.
//
// Every pgbench run opens fresh connections, and a fresh backend plans each
// statement of the script on its first calls: the first second of a run
// is several times slower than the rest. The server's pool stays connected
// for the whole bench, so to compare steady states the runner adds Warmup to
// the run and leaves out the transactions scheduled during it.
type pgbenchRunner struct {
	DatabaseURL string
	Clients     int
	Threads     int
	Script      string // path of the script file
	Dir         string // where per-run logs go
	Warmup      time.Duration
}

func (r pgbenchRunner) Run(ctx context.Context, rate float64, d time.Duration) (Measurement, error) {
	secs := max(1, int(math.Ceil((r.Warmup + d).Seconds())))
	logDir, err := os.MkdirTemp(r.Dir, "pgbench-log-")
	if err != nil {
		return Measurement{}, err
	}
	defer os.RemoveAll(logDir)
	args := []string{
		"--no-vacuum", "--protocol=prepared",
		"--client=" + strconv.Itoa(r.Clients), "--jobs=" + strconv.Itoa(r.Threads),
		"--time=" + strconv.Itoa(secs),
		"--file=" + r.Script, "--log", "--log-prefix=" + filepath.Join(logDir, "tx"),
		r.DatabaseURL,
	}
	if rate > 0 { // else as fast as the clients go: a saturation run
		args = append([]string{"--rate=" + strconv.FormatFloat(rate, 'f', 2, 64)}, args...)
	}
	cmd := exec.CommandContext(ctx, "pgbench", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Measurement{}, fmt.Errorf("pgbench: %v\n%s", err, tail(string(out), 2000))
	}
	if strings.Contains(string(out), "aborted") {
		return Measurement{}, fmt.Errorf("pgbench: a client aborted\n%s", tail(string(out), 2000))
	}
	files, _ := filepath.Glob(filepath.Join(logDir, "tx.*"))
	var readers []io.Reader
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return Measurement{}, err
		}
		defer fh.Close()
		readers = append(readers, fh)
	}
	m, err := parsePgbenchLog(io.MultiReader(readers...), r.Warmup, time.Duration(secs)*time.Second-r.Warmup)
	if err != nil {
		return Measurement{}, err
	}
	m.Target, m.Poisson = rate, rate > 0
	m.GeneratorCPU = childCPU(cmd.ProcessState)
	return m, nil
}

// parsePgbenchLog reads pgbench's per-transaction log (--log): lines of
// "client_id transaction_no time script_no time_epoch time_us
// [schedule_lag] [retries]", times in microseconds, time_epoch.time_us when
// the transaction ended. With --rate the latency counted is time +
// schedule_lag, from when the transaction was due; a transaction that failed
// or was skipped has a word instead of a time and counts as an error.
// Transactions due in the first warmup of the run are left out, and rates
// are computed over window.
func parsePgbenchLog(r io.Reader, warmup, window time.Duration) (Measurement, error) {
	type tx struct {
		due     int64 // µs since the epoch
		latency int64 // µs, -1 for a failure
	}
	var txs []tx
	first := int64(math.MaxInt64)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 6 {
			return Measurement{}, fmt.Errorf("pgbench log: unexpected line %q", sc.Text())
		}
		sec, err1 := strconv.ParseInt(f[4], 10, 64)
		usec, err2 := strconv.ParseInt(f[5], 10, 64)
		if err1 != nil || err2 != nil {
			return Measurement{}, fmt.Errorf("pgbench log: bad end time in %q", sc.Text())
		}
		t := tx{due: sec*1e6 + usec, latency: -1}
		if us, err := strconv.ParseInt(f[2], 10, 64); err == nil { // else "failed", "skipped", …
			if len(f) >= 7 {
				lag, err := strconv.ParseInt(f[6], 10, 64)
				if err != nil {
					return Measurement{}, fmt.Errorf("pgbench log: bad schedule lag in %q", sc.Text())
				}
				us += lag
			}
			t.latency = us
			t.due -= us
		}
		first = min(first, t.due)
		txs = append(txs, t)
	}
	if err := sc.Err(); err != nil {
		return Measurement{}, err
	}
	h := newLatencyHistogram()
	m := Measurement{Executed: int64(len(txs))}
	for _, t := range txs {
		if t.due < first+warmup.Microseconds() {
			continue
		}
		m.Requests++
		if t.latency < 0 {
			m.Errors++
			continue
		}
		_ = h.RecordValue(clampUS(t.latency))
	}
	m.fromHistogram(h, window)
	return m, nil
}

// newLatencyHistogram matches the load tool's geometry: 1 µs to an hour, 3
// significant digits.
func newLatencyHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)
}

func clampUS(us int64) int64 {
	return min(max(us, 1), int64(time.Hour/time.Microsecond))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// scaledRunner runs a script whose every transaction is factor purchases
// and reports purchases: rates and counts times factor.
type scaledRunner struct {
	r      runner
	factor float64
}

func (s scaledRunner) Run(ctx context.Context, rate float64, d time.Duration) (Measurement, error) {
	m, err := s.r.Run(ctx, rate/s.factor, d)
	f := s.factor
	m.Target, m.Achieved = m.Target*f, m.Achieved*f
	m.Requests, m.Executed, m.Errors, m.Dropped = int64(float64(m.Requests)*f), int64(float64(m.Executed)*f), int64(float64(m.Errors)*f), int64(float64(m.Dropped)*f)
	return m, err
}

// unthrottled runs r as fast as it goes, whatever rate it is asked for.
type unthrottled struct{ r runner }

func (u unthrottled) Run(ctx context.Context, _ float64, d time.Duration) (Measurement, error) {
	return u.r.Run(ctx, 0, d)
}
