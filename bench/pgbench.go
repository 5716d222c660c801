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
	"github.com/jackc/pgx/v5"
)

// purchaseSQL describes one purchase the way the server turns it into a
// coinop_post call (entitlements.Ledger.Purchase, then postTx): one unit of
// a consumable item at one price, with a fresh idempotency key, for a player
// chosen uniformly among Players, as `coinop loadtest` chooses its players.
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

// Script returns the pgbench script: two \set lines and the same single
// statement the server sends. Values the server computes per request (the
// idempotency key, the purchase id, the result and metadata JSON around
// them) are built in SQL from pgbench's random(); everything else is a
// literal with the exact bytes the server would send for this purchase.
func (p purchaseSQL) Script() string {
	// The fingerprint is sha256 of the request as the server encodes it.
	req, _ := json.Marshal(struct {
		ItemID   string `json:"item_id"`
		Quantity int64  `json:"quantity"`
		Price    price  `json:"price"`
	}{p.ItemID, 1, price{p.Currency, p.Price}})
	sum := sha256.Sum256(req)
	changes, _ := json.Marshal([]map[string]any{ // sorted by type, then id, as the server sorts them
		{"type": "currency", "id": p.Currency, "delta": -p.Price},
		{"type": "item", "id": p.ItemID, "delta": 1},
	})
	priceJSON, _ := json.Marshal(price{p.Currency, p.Price})
	// Go marshals the server's map[string]any with sorted keys; these
	// fragments keep that order around the per-transaction key.
	result := func(key string) string {
		return fmt.Sprintf("%s || %s || %s",
			pgLiteral(fmt.Sprintf(`{"item_id":%q,"price":%s,"purchase_id":"`, p.ItemID, priceJSON)),
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
	key := "'pgb-' || :client_id::text || '-' || :k::text"
	var b strings.Builder
	fmt.Fprintf(&b, "\\set pid random(1, %d)\n", p.Players)
	b.WriteString("\\set k random(1, 9223372036854775806)\n")
	b.WriteString("SELECT outcome, response, replayed, version, holdings FROM coinop_post(\n")
	fmt.Fprintf(&b, "  %s || :pid::text, %s, %s,\n", pgLiteral(p.PlayerPrefix), pgLiteral("POST /v1/purchases"), key)
	fmt.Fprintf(&b, "  '\\x%s'::bytea, %s, %s, %s,\n", hex.EncodeToString(sum[:]), pgLiteral("purchase"), key, pgLiteral("system:purchases"))
	b.WriteString("  NULL, NULL,\n")
	fmt.Fprintf(&b, "  %s::jsonb,\n", pgLiteral(string(changes)))
	fmt.Fprintf(&b, "  %s::text[],\n", pgLiteral("{"+strings.Join(p.Currencies, ",")+"}"))
	fmt.Fprintf(&b, "  (%s)::jsonb,\n", result(key))
	fmt.Fprintf(&b, "  (%s)::jsonb,\n", metadata(key))
	fmt.Fprintf(&b, "  %s::interval);\n", pgLiteral(fmt.Sprintf("%d milliseconds", p.KeyWait.Milliseconds())))
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

// querier is satisfied by *pgx.Conn and *pgxpool.Pool.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// fundPgbenchPlayers gives every pgbench player enough currency for any
// run, through coinop_post like an admin grant, so the purchases never fail
// for lack of funds.
func fundPgbenchPlayers(ctx context.Context, conn querier, p purchaseSQL) error {
	for i := 1; i <= p.Players; i++ {
		player := p.PlayerPrefix + strconv.Itoa(i)
		changes := fmt.Sprintf(`[{"type":"currency","id":%q,"delta":1000000000000000}]`, p.Currency)
		var outcome string
		err := conn.QueryRow(ctx, `SELECT outcome FROM coinop_post($1, 'POST /admin/v1/players/{player_id}/grants', 'bench-fund',
			'\x00'::bytea, 'admin_grant', $2, 'system:admin_grants', NULL, NULL, $3::jsonb, $4, '{}'::jsonb, '{}'::jsonb, '5 seconds')`,
			player, "bench-fund-"+player, changes, p.Currencies).Scan(&outcome)
		if err != nil {
			return fmt.Errorf("funding %s: %w", player, err)
		}
		if outcome != "ok" {
			return fmt.Errorf("funding %s: %s", player, outcome)
		}
	}
	return nil
}

// pgbenchRunner runs the purchase script at a fixed rate (pgbench --rate,
// which measures latency from each transaction's scheduled start, so a
// saturated database cannot hide its queue) with Clients connections.
//
// Every pgbench run opens fresh connections, and a fresh backend plans each
// statement inside coinop_post on its first calls: the first second of a run
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
		"--rate=" + strconv.FormatFloat(rate, 'f', 0, 64), "--time=" + strconv.Itoa(secs),
		"--file=" + r.Script, "--log", "--log-prefix=" + filepath.Join(logDir, "tx"),
		r.DatabaseURL,
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
	m.Target, m.Poisson = rate, true
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
