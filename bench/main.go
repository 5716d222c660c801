// Command bench is `make bench`: in one run on this machine it measures
// coinop against three baselines and writes docs/BENCHMARKS.md.
//
//   - Purchases: pgbench running the reference purchase (bench/reference,
//     fresh idempotency keys, the server's pool size as its client count)
//     against POST /v1/purchases driven by `coinop loadtest`, uniform over
//     50 players and on a hot wallet of 10; beside them, pgbench running the
//     ledger writer's own statements one purchase per transaction, and the
//     batched reference (64 purchases per call) as the ceiling.
//   - Entitlement checks: redis-benchmark GET at the server's Redis pool
//     size against the cached server-to-server check
//     GET /v1/players/{id}/entitlements/{item}, driven by `coinop loadtest`.
//   - Catalog: a minimal fiber handler returning the same JSON body against
//     GET /v1/catalog, as a 200 and as a 304, driven by `bench drive`.
//
// For each measurement a short search (doubling, then bisecting) finds the
// highest fixed arrival rate whose p99 stays within the SLO; one more run at
// 70% of that rate gives p50, p99 and CPU per request.
//
// The bench builds coinop once, runs `coinop serve` on a loopback port
// against a fresh database (coinop_bench_<random>, dropped at the end) and a
// fresh Redis prefix, and sends load to loopback addresses only. Every run
// is bounded by its duration and a request budget.
//
// Usage (from the module root):
//
//	go run ./bench [-quick] [-only purchases,checks,catalog] [-out docs/BENCHMARKS.md]
//
// BENCH_QUICK=1 is -quick. `bench drive …` is the catalog generator, which
// the bench runs as a child process.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/coinop/coinop/internal/localsvc"
	"github.com/coinop/coinop/loadtest"
)

//go:embed catalog.yaml
var benchCatalog []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "drive" {
		err = drive(ctx, os.Args[2:], os.Stdout)
	} else {
		err = run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// mode is how long and how finely the bench measures.
type mode struct {
	Name      string
	Step      time.Duration // one run of a search
	Hold      time.Duration // the run at 70% of max
	Settle    time.Duration // pause after each run
	Precision float64       // bisect until the bracket is this narrow
	MaxSteps  int           // most runs per search
	SatRounds int           // saturated runs of each purchase target, taking turns
	RedisN    int           // redis-benchmark requests
}

var (
	fullMode  = mode{Name: "full", Step: 4 * time.Second, Hold: 5 * time.Second, Settle: 500 * time.Millisecond, Precision: 0.1, MaxSteps: 16, SatRounds: 6, RedisN: 400_000}
	quickMode = mode{Name: "quick", Step: 2 * time.Second, Hold: 2 * time.Second, Settle: 250 * time.Millisecond, Precision: 0.3, MaxSteps: 12, SatRounds: 4, RedisN: 150_000}
)

// SLOs and targets from issue 6.
const (
	sloPurchase = 25 * time.Millisecond
	sloCheck    = 5 * time.Millisecond
	sloCatalog  = 5 * time.Millisecond

	targetPurchase  = 0.75 // of the reference purchase (issue 10)
	targetHotWallet = 0.5  // hot wallet over uniform (issue 10)
	// Purchases under an active creator code over plain ones (issue 17).
	targetCreatorCodes = 0.9
	targetCheck        = 0.5
	// Cached single checks against the check baselines (issue 11).
	targetCheckRedisFiber = 1.0
	targetCheckBareFiber  = 0.85
	targetCatalog         = 0.5
)

// Fixed shape of the workload.
const (
	players  = 50 // the load tool's default; pgbench spreads over as many
	poolSize = 20 // COINOP_DB_MAX_CONNS, and pgbench's clients
	rateCap  = 200_000
)

// tools are the baselines' programs and the package that installs each.
var tools = []struct{ bin, pkg string }{
	{"pgbench", "postgresql-client"},
	{"redis-benchmark", "redis-tools"},
}

// requireTools fails, naming the packages to install, when a baseline's
// program is missing.
func requireTools(lookPath func(string) (string, error)) error {
	var missing []string
	for _, t := range tools {
		if _, err := lookPath(t.bin); err != nil {
			missing = append(missing, fmt.Sprintf("%s (install the package %s, e.g. `apt-get install %s`)", t.bin, t.pkg, t.pkg))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("make bench needs %s", strings.Join(missing, " and "))
	}
	return nil
}

// bench is one run's shared state.
type bench struct {
	mode     mode
	out      io.Writer
	root     string // module root
	tmp      string
	bin      string // the coinop binary
	dbName   string // the bench database
	dbURL    string
	refName  string // the reference purchase's database
	refURL   string
	redisURL string
	prefix   string
	rdb      *redis.Client
	srv      *serverProc
	secrets  []string // COINOP_JWT_SECRET=… etc., for the server and the load tool
	jwt      string
	admin    string
	s2s      string
	version  int64 // the published catalog version
	script   string
	cleanups []func() // undo setup, run last first by teardown
	profile  bool     // sample coinop serve with perf during each run at 70%
	// loadBefore is /proc/loadavg's first three fields when the bench
	// started, and checkpoints Postgres's checkpoint count then: other
	// work on the machine, or on the shared Postgres, lowers every number.
	loadBefore  string
	checkpoints [2]int64 // timed, requested
}

func (b *bench) log(format string, args ...any) { fmt.Fprintf(b.out, format+"\n", args...) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", isTrue(getenv("BENCH_QUICK")), "short steps and a coarse search, about 2.5 minutes instead of 6 (BENCH_QUICK=1)")
	profile := fs.Bool("profile", isTrue(getenv("BENCH_PROFILE")), "sample coinop serve with Linux perf during each run at 70% of max (BENCH_PROFILE=1)")
	only := fs.String("only", "purchases,checks,catalog", "comparisons to run")
	out := fs.String("out", "docs/BENCHMARKS.md", "where to write the report (relative to the module root)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		s = strings.TrimSpace(s)
		if s != "purchases" && s != "checks" && s != "catalog" {
			return fmt.Errorf("-only: unknown comparison %q (want purchases, checks, catalog)", s)
		}
		want[s] = true
	}
	if err := requireTools(exec.LookPath); err != nil {
		return err
	}
	if _, err := exec.LookPath("perf"); *profile && err != nil {
		return errors.New("-profile needs perf (install the package linux-perf, or linux-tools-generic on Ubuntu)")
	}
	b := &bench{mode: fullMode, out: stdout, profile: *profile, loadBefore: strings.Join(firstFields(readFile("/proc/loadavg"), 3), ", ")}
	if *quick {
		b.mode = quickMode
	}
	// A failsafe far above the expected length: every run is bounded
	// already, but a hung child must not keep the bench alive forever.
	ctx, cancel := context.WithTimeout(ctx, 40*time.Minute)
	defer cancel()
	began := time.Now()

	if b.root, err = moduleRoot(ctx); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "coinop-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)

	if err := b.setup(ctx, getenv); err != nil {
		return err
	}
	defer b.teardown()

	rep := &Report{Generated: time.Now(), Mode: b.mode.Name, Commit: gitCommit(ctx, b.root)}
	if want["purchases"] {
		p, err := b.purchases(ctx)
		if err != nil {
			return err
		}
		rep.Pairs = append(rep.Pairs, p)
	}
	if want["checks"] {
		p, err := b.checks(ctx)
		if err != nil {
			return err
		}
		rep.Pairs = append(rep.Pairs, p)
	}
	if want["catalog"] {
		p, err := b.catalog(ctx)
		if err != nil {
			return err
		}
		rep.Pairs = append(rep.Pairs, p)
	}
	rep.Machine = b.machine(ctx)
	rep.Settings = b.settings()

	path := *out
	if !filepath.IsAbs(path) {
		path = filepath.Join(b.root, path)
	}
	if old, err := os.ReadFile(path); err == nil {
		rep.Notes = extractNotes(string(old))
	}
	rep.PgbenchScript = b.script
	var doc bytes.Buffer
	if err := rep.WriteMarkdown(&doc); err != nil {
		return err
	}
	if err := os.WriteFile(path, doc.Bytes(), 0o644); err != nil {
		return err
	}

	b.log("\nresults (max sustained rate with p99 within the SLO):")
	for _, p := range rep.Pairs {
		for _, c := range p.Coinop {
			r := p.Ratio(c)
			verdict := "met"
			if c.Info {
				verdict = "informational"
			} else if math.IsNaN(r) || r < p.Target {
				verdict = "MISSED"
			}
			b.log("  %-9s %-40s %12s vs %-28s %12s = %s (target ≥ %g×: %s)",
				p.Name, c.Label, fmtMax(c), p.Baseline.Label, fmtMax(p.Baseline), fmtRatio(r), p.Target, verdict)
		}
	}
	for _, p := range rep.Pairs {
		for _, l := range p.Ratios {
			b.log("  %-9s %s: %s (target ≥ %g×: %s)", p.Name, l.Label, fmtRatio(l.Ratio()), l.Target, l.Verdict())
		}
	}
	b.log("wrote %s in %s", *out, time.Since(began).Round(time.Second))
	return nil
}

func isTrue(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// setup finds Postgres and Redis, creates the bench database, builds coinop,
// starts the server and publishes the bench catalog. On error it undoes what
// it did.
func (b *bench) setup(ctx context.Context, getenv func(string) string) (err error) {
	defer func() {
		if err != nil {
			b.teardown()
		}
	}()
	id := randomHex(4)
	b.prefix = "coinop_bench_" + id + ":"
	b.jwt, b.admin, b.s2s = randomHex(32), randomHex(16), randomHex(16)
	b.secrets = []string{"COINOP_JWT_SECRET=" + b.jwt, "COINOP_ADMIN_TOKEN=" + b.admin, "COINOP_SERVER_TOKEN=" + b.s2s}

	pgURL, stopPG, err := localsvc.EnsurePostgres(ctx, getenv("COINOP_TEST_DATABASE_URL"), filepath.Join(b.tmp, "postgres"))
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	b.cleanups = append(b.cleanups, stopPG)
	redisURL, stopRedis, err := localsvc.EnsureRedis(ctx, getenv("COINOP_TEST_REDIS_URL"), "")
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	b.cleanups = append(b.cleanups, stopRedis)
	b.redisURL = redisURL
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	b.rdb = redis.NewClient(opt)
	b.cleanups = append(b.cleanups, func() {
		b.deleteRedisKeys()
		b.rdb.Close()
	})

	b.dbName = "coinop_bench_" + id
	if b.dbURL, err = createDatabase(ctx, pgURL, b.dbName); err != nil {
		return err
	}
	b.cleanups = append(b.cleanups, func() { dropDatabase(pgURL, b.dbName, b.log) })
	// The reference purchase gets a database of its own, so that neither
	// side's autovacuum counts as the other's Postgres CPU.
	b.refName = b.dbName + "_ref"
	if b.refURL, err = createDatabase(ctx, pgURL, b.refName); err != nil {
		return err
	}
	b.cleanups = append(b.cleanups, func() { dropDatabase(pgURL, b.refName, b.log) })
	b.log("bench: database %s, Redis prefix %s", b.dbName, b.prefix)
	b.checkpoints, _ = checkpoints(ctx, b.dbURL)

	b.bin = filepath.Join(b.tmp, "coinop")
	b.log("bench: go build ./cmd/coinop")
	build := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./cmd/coinop")
	build.Dir = b.root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/coinop: %v\n%s", err, out)
	}

	env := append([]string{
		"COINOP_DATABASE_URL=" + b.dbURL,
		"COINOP_REDIS_URL=" + redisURL,
		"COINOP_REDIS_PREFIX=" + b.prefix,
		"COINOP_DB_MAX_CONNS=" + strconv.Itoa(poolSize),
		"COINOP_RATE_LIMIT=off",
		"COINOP_AUTO_MIGRATE=true",
		"COINOP_LOG_LEVEL=warn",
		// The creator program is on for every measurement, as a studio
		// running it would have it: a plain purchase then pays for
		// looking up the player's code, and the creator-code purchases
		// compare with it on equal terms.
		"COINOP_CREATOR_PROGRAM=true",
	}, b.secrets...)
	if b.srv, err = startServer(ctx, b.bin, env, filepath.Join(b.tmp, "serve.log")); err != nil {
		return err
	}
	b.cleanups = append(b.cleanups, func() {
		if err := b.srv.Stop(); err != nil {
			b.log("bench: stopping coinop serve: %v", err)
		}
	})
	b.log("bench: coinop serve at %s (pid %d)", b.srv.URL, b.srv.cmd.Process.Pid)
	if b.version, err = b.publishCatalog(ctx); err != nil {
		return fmt.Errorf("%w\n%s", err, b.srv.logTail())
	}
	return nil
}

// teardown undoes setup, last step first. It runs once.
func (b *bench) teardown() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	b.cleanups = nil
}

// target is one thing measured: what drives it and how to search it.
type target struct {
	Label, Tool string
	Runner      runner
	SLO         time.Duration
	Start       float64 // the search's first rate
	// WarmRate, when set, is the rate of one uncounted run before the
	// search: fast enough to queue, so the server opens its whole
	// Postgres pool and every backend has prepared the writer's statements
	// before anything is measured (pgbench warms up inside each of its runs).
	WarmRate  float64
	ServerPID int // whose CPU counts as the server's; 0 for none
	// Database is whose Postgres backends count; "" for the bench database.
	Database string
	// SatRunner, when set, runs the mode's SatRounds more times at SatRate,
	// far above what the target can serve.
	SatRunner runner
	SatRate   float64
	// Paired targets are compared round by round (RatioLine.Saturated):
	// their saturated runs come one after another in each round.
	Paired bool
}

// measureAll searches each target's max sustained rate, the targets taking
// turns one rate at a time, then runs each once more at 70% of its max for
// percentiles, CPU and (with -profile) a profile of the server.
func (b *bench) measureAll(ctx context.Context, targets ...target) ([]Result, error) {
	var xs []*searcher
	for _, t := range targets {
		b.log("%s (%s), p99 ≤ %s", t.Label, t.Tool, fmtDuration(t.SLO))
		if t.WarmRate > 0 {
			if _, err := t.Runner.Run(ctx, t.WarmRate, time.Second); err != nil {
				return nil, fmt.Errorf("%s: warming up: %w", t.Label, err)
			}
			time.Sleep(b.mode.Settle)
		}
		xs = append(xs, &searcher{
			s:     Search{Start: t.Start, Floor: 10, Cap: rateCap, Precision: b.mode.Precision, MaxSteps: b.mode.MaxSteps},
			r:     t.Runner,
			label: t.Label,
			slo:   t.SLO,
		})
	}
	if err := runSearches(ctx, xs, b.mode.Step, b.mode.Settle, b.log); err != nil {
		return nil, err
	}
	var out []Result
	for i, t := range targets {
		res := Result{Label: t.Label, Tool: t.Tool, Steps: xs[i].steps}
		res.Max, res.Capped = MaxSustained(res.Steps, rateCap)
		if res.Max == 0 {
			b.log("  %s sustained no rate", t.Label)
			out = append(out, res)
			continue
		}
		if err := b.at70(ctx, t, &res); err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	// Saturation rounds, the targets taking turns: what each serves when
	// offered far more than it can, and the CPU each purchase costs then.
	for round := 0; round < b.mode.SatRounds; round++ {
		for _, i := range saturationOrder(targets, round) {
			if err := b.saturate(ctx, targets[i], &out[i]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// saturationOrder is the order in which round `round` saturates the
// targets (indexes into targets; those without a SatRunner are left out):
// the unpaired ones first, then the paired ones next to each other, and
// every other round the whole order reversed. What a target serves drifts
// down through a bench as the ledger tables grow (about a quarter over six
// rounds of the purchase targets), so a pair measured apart, or always in
// the same order, would read the drift as a difference between them;
// side by side and in alternating order, it cancels over the rounds.
func saturationOrder(targets []target, round int) []int {
	var order, paired []int
	for i, t := range targets {
		switch {
		case t.SatRunner == nil:
		case t.Paired:
			paired = append(paired, i)
		default:
			order = append(order, i)
		}
	}
	order = append(order, paired...)
	if round%2 == 1 {
		slices.Reverse(order)
	}
	return order
}

// saturationWorkers is how many purchases the load tool keeps in flight
// when a target runs saturated.
const saturationWorkers = 128

// saturate offers t.SatRate for one hold and records what was served.
func (b *bench) saturate(ctx context.Context, t target, res *Result) error {
	db := b.dbName
	if t.Database != "" {
		db = t.Database
	}
	w := watchCPU(t.ServerPID, db)
	m, err := t.SatRunner.Run(ctx, t.SatRate, b.mode.Hold)
	used, busy := w.Stop()
	if err != nil {
		return fmt.Errorf("%s saturated: %w", t.Label, err)
	}
	res.Saturated = append(res.Saturated, Saturation{M: m, CPU: cpuUse(used, busy, m.GeneratorCPU, m.executed())})
	b.log("  %-28s saturated: served %s, Postgres CPU %s per request", t.Label, fmtRate(m.Achieved),
		fmtDuration(res.Saturated[len(res.Saturated)-1].CPU.PerRequest[cpuPostgres]))
	time.Sleep(b.mode.Settle)
	return nil
}

// at70 runs t at 70% of res.Max and records percentiles, CPU per request
// and, with -profile, where the server's CPU went.
func (b *bench) at70(ctx context.Context, t target, res *Result) (err error) {
	rate := math.Round(0.7 * res.Max)
	var prof *profiler
	if b.profile && t.ServerPID == b.srv.cmd.Process.Pid {
		if prof, err = startProfile(ctx, t.ServerPID, b.tmp); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond) // let perf attach before the load starts
	}
	db := b.dbName
	if t.Database != "" {
		db = t.Database
	}
	w := watchCPU(t.ServerPID, db)
	m, err := t.Runner.Run(ctx, rate, b.mode.Hold)
	used, busy := w.Stop()
	if prof != nil {
		p, perr := prof.Stop(ctx)
		if err == nil {
			err = perr
		}
		res.Profile = p
	}
	if err != nil {
		return fmt.Errorf("%s at 70%% of max: %w", t.Label, err)
	}
	res.At70, res.CPU = m, cpuUse(used, busy, m.GeneratorCPU, m.executed())
	b.log("  %-28s max %s; at 70%% (%s): p50 %s, p99 %s", t.Label, fmtMax(*res), fmtRate(m.Achieved), fmtDuration(m.P50), fmtDuration(m.P99))
	time.Sleep(b.mode.Settle)
	return nil
}

// Reference purchase scripts (bench/reference, copied from the team's
// shared bench material): the least SQL that does a purchase's obligations.
var (
	//go:embed reference/reference-schema.sql
	referenceSchema string
	//go:embed reference/reference-purchase.pgbench
	referencePurchase string
	//go:embed reference/reference-purchase-batch64.pgbench
	referenceBatch64 string
)

// referenceBatch is how many purchases one call of the batched reference makes.
const referenceBatch = 64

// hotPlayers is how many players the hot-wallet run puts all load on.
const hotPlayers = 10

// purchases compares POST /v1/purchases, uniform and on a hot wallet, and
// pgbench running the writer's own statements, with pgbench running the
// reference purchase at the server's pool size; the batched reference is
// the ceiling.
func (b *bench) purchases(ctx context.Context) (Pair, error) {
	db, err := pgxpool.New(ctx, b.dbURL)
	if err != nil {
		return Pair{}, err
	}
	defer db.Close()
	sql := purchaseSQL{
		PlayerPrefix: "pgb-", Players: players,
		ItemID: "potion", Currency: "gold", Price: 100,
		Currencies: []string{"gold", "gems"}, CatalogVersion: b.version,
		KeyWait: 5 * time.Second, // COINOP_IDEMPOTENCY_WAIT's default
	}
	if err := fundPgbenchPlayers(ctx, db, sql); err != nil {
		return Pair{}, err
	}
	b.log("bench: loading the reference schema (100,000 players)")
	ref, err := pgx.Connect(ctx, b.refURL)
	if err != nil {
		return Pair{}, err
	}
	defer ref.Close(context.Background())
	if _, err := ref.Exec(ctx, referenceSchema); err != nil {
		return Pair{}, fmt.Errorf("reference schema: %w", err)
	}
	if _, err := ref.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return Pair{}, err
	}
	b.script = sql.Script()
	scripts := map[string]string{"purchase.sql": b.script, "reference.pgbench": referencePurchase, "reference64.pgbench": referenceBatch64}
	paths := map[string]string{}
	for name, body := range scripts {
		path, err := b.writeFile(name, body)
		if err != nil {
			return Pair{}, err
		}
		paths[name] = path
	}
	pgRunner := func(url, script string, clients int) pgbenchRunner {
		return pgbenchRunner{DatabaseURL: url, Clients: clients, Threads: runtime.NumCPU(), Script: paths[script], Dir: b.tmp, Warmup: time.Second}
	}
	scenario, err := b.writeFile("purchases.yaml",
		"mix: {purchase: 1}\npurchase: {retry_share: 0, stale_price_share: 0, max_quantity: 1}\n")
	if err != nil {
		return Pair{}, err
	}
	// Grow the ledger tables past a few pages before anything is measured,
	// then VACUUM ANALYZE. Plans that Postgres caches while a table is a
	// page or two (the server's prepared statements, the foreign-key and
	// double-entry checks its backends run) scan the whole table, and a
	// long-lived connection keeps them until the next ANALYZE: without
	// this, every measurement of the server would pay for scans of tables
	// that grow during the bench, as no production database (whose tables
	// are large from its first minutes) would.
	b.log("bench: growing the ledger tables before measuring")
	if _, err := (unthrottled{pgRunner(b.dbURL, "purchase.sql", poolSize)}).Run(ctx, 0, 3*time.Second); err != nil {
		return Pair{}, fmt.Errorf("growing the ledger tables: %w", err)
	}
	client := loadtest.NewClient(b.srv.URL, 8, 10*time.Second, b.admin, b.s2s)
	defer client.Close()
	spread, err := b.creatorCodePlayers(ctx, client, "codes", players, players)
	if err != nil {
		return Pair{}, err
	}
	one, err := b.creatorCodePlayers(ctx, client, "onecreator", 1, players)
	if err != nil {
		return Pair{}, err
	}
	// The plain purchases' players are as fixed as the creator-code
	// runs': the same 50 in every run, as a game's players come back.
	// Players new to each run (the load tool's own) would have no cached
	// holdings to patch and balance rows updated only from that run, a
	// cheaper purchase than the creator-code runs' players make after a
	// few rounds.
	plain, err := b.creatorCodePlayers(ctx, client, "plain", 0, players)
	if err != nil {
		return Pair{}, err
	}
	uniform := b.loadtest(loadtest.EndpointPurchase, "--scenario", scenario, "--tokens", plain.TokensPath)
	coded := b.loadtest(loadtest.EndpointPurchase, "--scenario", scenario, "--tokens", spread.TokensPath)
	oneCreator := b.loadtest(loadtest.EndpointPurchase, "--scenario", scenario, "--tokens", one.TokensPath)
	hot := b.loadtest(loadtest.EndpointPurchase, "--scenario", scenario, "--tokens", plain.TokensPath, "--players", strconv.Itoa(hotPlayers))
	if _, err := db.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return Pair{}, err
	}
	pid := b.srv.cmd.Process.Pid
	// Saturation: pgbench without --rate on its connections; the load tool
	// offering far more than the server serves, from saturationWorkers
	// requests in flight at most (the concurrency group commit feeds on).
	const saturate = 20000
	satArgs := []string{"--workers", strconv.Itoa(saturationWorkers)}
	uniformSat := b.loadtest(loadtest.EndpointPurchase, append([]string{"--scenario", scenario, "--tokens", plain.TokensPath}, satArgs...)...)
	hotSat := b.loadtest(loadtest.EndpointPurchase, append([]string{"--scenario", scenario, "--tokens", plain.TokensPath, "--players", strconv.Itoa(hotPlayers)}, satArgs...)...)
	codedSat := b.loadtest(loadtest.EndpointPurchase, append([]string{"--scenario", scenario, "--tokens", spread.TokensPath}, satArgs...)...)
	oneCreatorSat := b.loadtest(loadtest.EndpointPurchase, append([]string{"--scenario", scenario, "--tokens", one.TokensPath}, satArgs...)...)
	rs, err := b.measureAll(ctx,
		target{Label: "pgbench: reference purchase", Tool: "pgbench", Runner: pgRunner(b.refURL, "reference.pgbench", poolSize), SLO: sloPurchase, Start: 250,
			Database: b.refName, SatRunner: unthrottled{pgRunner(b.refURL, "reference.pgbench", poolSize)}},
		target{Label: "POST /v1/purchases", Tool: "coinop loadtest", Runner: uniform, SLO: sloPurchase,
			Start: 250, WarmRate: 2000, ServerPID: pid, SatRunner: uniformSat, SatRate: saturate, Paired: true},
		target{Label: fmt.Sprintf("POST /v1/purchases, hot wallet (%d players)", hotPlayers), Tool: "coinop loadtest", Runner: hot, SLO: sloPurchase,
			Start: 250, WarmRate: 2000, ServerPID: pid, SatRunner: hotSat, SatRate: saturate},
		target{Label: "pgbench: the writer's statements, one purchase per transaction", Tool: "pgbench", Runner: pgRunner(b.dbURL, "purchase.sql", poolSize),
			SLO: sloPurchase, Start: 250, SatRunner: unthrottled{pgRunner(b.dbURL, "purchase.sql", poolSize)}},
		target{Label: fmt.Sprintf("pgbench: reference, %d purchases per call (ceiling)", referenceBatch), Tool: "pgbench",
			Runner: scaledRunner{r: pgRunner(b.refURL, "reference64.pgbench", 4), factor: referenceBatch}, SLO: sloPurchase, Start: 1000,
			Database: b.refName, SatRunner: unthrottled{scaledRunner{r: pgRunner(b.refURL, "reference64.pgbench", 4), factor: referenceBatch}}},
		target{Label: fmt.Sprintf("POST /v1/purchases under creator codes (%d creators)", len(spread.Creators)), Tool: "coinop loadtest", Runner: coded, SLO: sloPurchase,
			Start: 250, WarmRate: 2000, ServerPID: pid, SatRunner: codedSat, SatRate: saturate, Paired: true},
		target{Label: "POST /v1/purchases under creator codes (all crediting one creator)", Tool: "coinop loadtest", Runner: oneCreator, SLO: sloPurchase,
			Start: 250, WarmRate: 2000, ServerPID: pid, SatRunner: oneCreatorSat, SatRate: saturate, Paired: true})
	if err != nil {
		return Pair{}, err
	}
	rs[3].Info, rs[4].Info, rs[5].Info, rs[6].Info = true, true, true, true
	// Every creator-code purchase credits: were none credited, the two
	// runs would have measured plain purchases under other names.
	for _, run := range []codeRunPlayers{spread, one} {
		credited, err := b.creditedMicro(ctx, client, run.Creators)
		if err != nil {
			return Pair{}, err
		}
		if credited["gold"] <= 0 {
			return Pair{}, fmt.Errorf("the creator-code purchases credited their creators nothing (%v)", credited)
		}
		b.log("  creators %s…: %s gold credited in all", run.Creators[0], formatMicro(credited["gold"]))
	}
	pair := Pair{
		Name: "Purchases", SLO: sloPurchase, Target: targetPurchase, Baseline: rs[0], Coinop: rs[1:],
		What: fmt.Sprintf("One potion for 100 gold with a fresh idempotency key. "+
			"The baseline is pgbench running the reference purchase (`bench/reference`: the least SQL that does a purchase's obligations) "+
			"for one of 100,000 players over %d connections, the size of the server's pool. "+
			"The server gets the same purchase as JSON over HTTP for one of %d players, and in the hot-wallet run for one of %d of them, the same players in every run. "+
			"pgbench also runs the ledger writer's own statements for one purchase per transaction (what a purchase costs without group commit), "+
			"and the batched reference (%d players per call and commit, over 4 connections, counted in purchases): the ceiling of group commit. "+
			"Those two are informational. "+
			"With the creator program on (as for every measurement), the same purchase by %d players who each support a creator code "+
			"(so each purchase also credits its creator 5%% of the 100 gold in its own ledger transaction), "+
			"their codes spread over %d creators, and in the last run all of one creator: the plain purchase is the uniform run.",
			poolSize, players, hotPlayers, referenceBatch, players, players),
	}
	if rs[1].Max > 0 {
		pair.Ratios = append(pair.Ratios,
			RatioLine{Label: "hot wallet vs uniform", Of: rs[2], Over: rs[1], Target: targetHotWallet},
			// Issue 17's throughput target is read at saturation, paired
			// round by round: a 10% difference is below what the
			// p99-bounded max resolves on a shared machine (its search
			// steps are 10% apart and one disk stall fails a step), so the
			// max ratios are shown for context only.
			RatioLine{Label: "under creator codes vs plain, max sustained", Of: rs[5], Over: rs[1], Target: targetCreatorCodes, Info: true},
			RatioLine{Label: "all crediting one creator vs plain, max sustained", Of: rs[6], Over: rs[1], Target: targetCreatorCodes, Info: true},
			RatioLine{Label: "under creator codes vs plain, served at saturation", Of: rs[5], Over: rs[1], Target: targetCreatorCodes, Saturated: true},
			RatioLine{Label: "all crediting one creator vs plain, served at saturation", Of: rs[6], Over: rs[1], Target: targetCreatorCodes, Saturated: true})
	}
	return pair, nil
}

// checks compares redis-benchmark GET with the cached entitlement check.
func (b *bench) checks(ctx context.Context) (Pair, error) {
	client := loadtest.NewClient(b.srv.URL, 8, 10*time.Second, b.admin, b.s2s)
	defer client.Close()
	var tokens strings.Builder
	ids := make([]string, players)
	for i := range players {
		ids[i] = fmt.Sprintf("bench-check-%d", i+1)
		tok, err := loadtest.MintToken([]byte(b.jwt), ids[i], time.Now(), 2*time.Hour, "", "")
		if err != nil {
			return Pair{}, err
		}
		fmt.Fprintf(&tokens, "%s %s\n", ids[i], tok)
		// Each player owns a potion, so a check answers "owned" from the
		// entry the grant wrote to the cache after its commit.
		r, res, err := client.Grant(ctx, ids[i], "bench-fund", loadtest.GrantRequest{
			Reason: "bench", Currencies: map[string]int64{"gold": 1000}, Items: map[string]int64{"potion": 1},
		})
		switch {
		case err != nil:
			return Pair{}, fmt.Errorf("granting %s: %w", ids[i], err)
		case res == nil:
			return Pair{}, fmt.Errorf("granting %s: HTTP %d %s", ids[i], r.Status, r.Body)
		}
	}
	if err := b.warmChecks(ctx, client, ids); err != nil {
		return Pair{}, err
	}

	// The baseline reads values as large as the cached entry's data.
	value, err := b.rdb.HGet(ctx, b.holdingsKey(ids[0]), "d").Result()
	if err != nil {
		return Pair{}, fmt.Errorf("reading a cached entry: %w", err)
	}
	rb := redisBenchmark{URL: b.redisURL, Conns: redisPoolSize(), Requests: b.mode.RedisN, Keyspace: players, Prefix: b.prefix}
	if err := rb.Fill(ctx, b.rdb, value); err != nil {
		return Pair{}, err
	}
	// redis-benchmark runs once before coinop's search and once after;
	// the better run is the baseline (other work only ever slows a run).
	var base Result
	runRedis := func() error {
		b.log("redis-benchmark GET (-c %d -n %d), p99 ≤ %s", rb.Conns, rb.Requests, fmtDuration(sloCheck))
		w := watchCPU(0, b.dbName)
		m, err := rb.Run(ctx)
		used, busy := w.Stop()
		if err != nil {
			return err
		}
		ok, why := m.Sustained(sloCheck)
		b.log("  %-28s %s, p50 %s, p99 %s", "redis-benchmark GET", fmtRate(m.Achieved), fmtDuration(m.P50), fmtDuration(m.P99))
		base.Steps = append(base.Steps, Step{Rate: m.Achieved, OK: ok, Reason: why, M: m})
		if ok && m.Achieved > base.Max {
			base.Max, base.At70, base.CPU = m.Achieved, m, cpuUse(used, busy, m.GeneratorCPU, m.executed())
		}
		return nil
	}
	base.Label, base.Tool, base.AtMax = "redis-benchmark GET", "redis-benchmark", true
	if err := runRedis(); err != nil {
		return Pair{}, err
	}

	if err := b.warmChecks(ctx, client, ids); err != nil {
		return Pair{}, err
	}
	// The baselines: a bare fiber handler sending coinop's answer, and a
	// fiber handler answering from one go-redis HMGET of the same entry.
	r, err := client.CheckOwnership(ctx, ids[0], "potion")
	if err != nil || r.Status != http.StatusOK {
		return Pair{}, fmt.Errorf("a check before the baselines: %v", err)
	}
	bareURL, stopBare, err := startBareCheckFiber(r.Body)
	if err != nil {
		return Pair{}, err
	}
	defer stopBare()
	brdb, err := benchRedisClient(b.redisURL)
	if err != nil {
		return Pair{}, err
	}
	defer brdb.Close()
	redisURL, stopRedis, err := startRedisCheckFiber(brdb, b.prefix)
	if err != nil {
		return Pair{}, err
	}
	defer stopRedis()
	path := "/v1/players/bench-check-{n}/entitlements/potion"
	drive := func(url, auth string) driveRunner {
		return driveRunner{URL: url, Path: path, Spread: players, Authorization: auth, Expect: http.StatusOK}
	}
	rs, err := b.measureAll(ctx,
		target{Label: "minimal fiber handler (check route)", Tool: "bench drive", SLO: sloCheck, Start: 1000,
			Runner: drive(bareURL, ""), ServerPID: os.Getpid()},
		target{Label: "fiber handler + one go-redis HMGET", Tool: "bench drive", SLO: sloCheck, Start: 1000,
			Runner: drive(redisURL, ""), ServerPID: os.Getpid()},
		target{Label: "GET /v1/players/{id}/entitlements/{item}", Tool: "bench drive", SLO: sloCheck, Start: 1000,
			Runner: drive(b.srv.URL, "Bearer "+b.s2s), WarmRate: 2000, ServerPID: b.srv.cmd.Process.Pid})
	if err != nil {
		return Pair{}, err
	}
	bare, viaRedis, c := rs[0], rs[1], rs[2]
	// Whether the checks hit: a miss is a Postgres load, not the cached path.
	b.log("  server cache counters after the checks: %s", b.cacheCounters())
	bare.Info, viaRedis.Info = true, true
	if err := runRedis(); err != nil {
		return Pair{}, err
	}
	return Pair{
		Name: "Entitlement checks", SLO: sloCheck, Target: targetCheck, Baseline: base, Coinop: []Result{c, viaRedis, bare},
		Ratios: []RatioLine{
			{Label: "cached check vs fiber + one go-redis HMGET", Of: c, Over: viaRedis, Target: targetCheckRedisFiber},
			{Label: "cached check vs minimal fiber handler", Of: c, Over: bare, Target: targetCheckBareFiber},
		},
		What: fmt.Sprintf("A game server asks whether one of %d players owns the potion, answered from the warm Redis cache "+
			"(one HMGET). `bench drive` sends the same requests, the %d players in turn and the server key in the header, to coinop "+
			"and to two fiber apps in the bench process on the same route: one answering from one go-redis HMGET of the same "+
			"cached entry (same key and bytes, coinop serve's client settings), and a bare one sending coinop's answer. "+
			"redis-benchmark sends GET over %d connections, the size of the server's Redis pool, on %d keys "+
			"holding values as large as a cached entry; it runs once before coinop's search and once after, and the better run counts.", players, players, rb.Conns, players),
	}, nil
}

// cacheCounters reads coinop serve's cache hit, miss and bypass counters.
func (b *bench) cacheCounters() string {
	resp, err := http.Get(b.srv.URL + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		for _, name := range []string{"coinop_cache_hits_total ", "coinop_cache_misses_total ", "coinop_cache_bypass_total ", "coinop_cache_stale_refusals_total "} {
			if strings.HasPrefix(line, name) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, ", ")
}

// warmChecks makes sure every player's holdings are in the cache, so the
// check measures the cached path and not the first load from Postgres.
func (b *bench) warmChecks(ctx context.Context, client *loadtest.Client, ids []string) error {
	for _, id := range ids {
		r, err := client.CheckOwnership(ctx, id, "potion")
		if err != nil {
			return fmt.Errorf("warming %s: %w", id, err)
		}
		var oc loadtest.OwnershipCheck
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &oc) != nil || !oc.Owned {
			return fmt.Errorf("warming %s: HTTP %d %s", id, r.Status, r.Body)
		}
		n, err := b.rdb.Exists(ctx, b.holdingsKey(id)).Result()
		if err != nil || n != 1 {
			return fmt.Errorf("the cache has no entry for %s after a check (%v)", id, err)
		}
	}
	return nil
}

func (b *bench) holdingsKey(player string) string { return b.prefix + "{" + player + "}:holdings" }

// redisPoolSize is go-redis's default pool size, which coinop serve keeps:
// ten connections per CPU.
func redisPoolSize() int { return 10 * runtime.GOMAXPROCS(0) }

// catalog compares a minimal fiber handler with GET /v1/catalog.
func (b *bench) catalog(ctx context.Context) (Pair, error) {
	resp, err := http.Get(b.srv.URL + "/v1/catalog")
	if err != nil {
		return Pair{}, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return Pair{}, fmt.Errorf("GET /v1/catalog: HTTP %d %v", resp.StatusCode, err)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		return Pair{}, errors.New("GET /v1/catalog sent no ETag")
	}
	fiberURL, stop, err := startMinimalFiber(body)
	if err != nil {
		return Pair{}, err
	}
	defer stop()

	pid := b.srv.cmd.Process.Pid
	rs, err := b.measureAll(ctx,
		target{Label: "minimal fiber handler (200)", Tool: "bench drive", SLO: sloCatalog, Start: 1000,
			Runner: driveRunner{URL: fiberURL, Expect: http.StatusOK}, ServerPID: os.Getpid()},
		target{Label: "GET /v1/catalog (200)", Tool: "bench drive", SLO: sloCatalog, Start: 1000,
			Runner: driveRunner{URL: b.srv.URL, Expect: http.StatusOK}, ServerPID: pid},
		target{Label: "GET /v1/catalog (304)", Tool: "bench drive", SLO: sloCatalog, Start: 1000,
			Runner: driveRunner{URL: b.srv.URL, IfNoneMatch: etag, Expect: http.StatusNotModified}, ServerPID: pid})
	if err != nil {
		return Pair{}, err
	}
	base, c200, c304 := rs[0], rs[1], rs[2]
	return Pair{
		Name: "Catalog", SLO: sloCatalog, Target: targetCatalog, Baseline: base, Coinop: []Result{c200, c304},
		What: fmt.Sprintf("The minimal handler is a default fiber app in the bench process answering GET /v1/catalog with the same "+
			"%d-byte JSON body the server sends. The 304 rows send If-None-Match with the catalog's ETag. "+
			"`coinop loadtest` revalidates with If-None-Match after each player's first read, so it cannot hold the 200 path; "+
			"`bench drive` (the load tool's scheduler, HTTP client and HDR recorder in a child process) drives all three.", len(body)),
	}, nil
}

// loadtest returns a runner of `coinop loadtest` against the server.
func (b *bench) loadtest(endpoint string, args ...string) loadtestRunner {
	return loadtestRunner{Bin: b.bin, URL: b.srv.URL, Endpoint: endpoint, Args: args, Env: b.secrets, Dir: b.tmp}
}

func (b *bench) writeFile(name, content string) (string, error) {
	p := filepath.Join(b.tmp, name)
	return p, os.WriteFile(p, []byte(content), 0o600)
}

// publishCatalog publishes the bench catalog and waits until the server
// serves it.
func (b *bench) publishCatalog(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, b.srv.URL+"/admin/v1/catalog", bytes.NewReader(benchCatalog))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+b.admin)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("publishing the catalog: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var v struct {
		Version int64 `json:"version"`
	}
	if resp.StatusCode/100 != 2 || json.Unmarshal(body, &v) != nil || v.Version == 0 {
		return 0, fmt.Errorf("publishing the catalog: HTTP %d %s", resp.StatusCode, body)
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(b.srv.URL + "/v1/catalog")
		if err != nil {
			continue
		}
		var doc loadtest.CatalogDocument
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err == nil && doc.Version == v.Version {
			return v.Version, nil
		}
	}
	return 0, fmt.Errorf("the server did not serve catalog version %d within 15s", v.Version)
}

// deleteRedisKeys removes every key under the bench prefix.
func (b *bench) deleteRedisKeys() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := b.rdb.Scan(ctx, 0, b.prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	for chunk := range slices.Chunk(keys, 500) {
		b.rdb.Unlink(ctx, chunk...)
	}
}

// serverProc is a running `coinop serve`.
type serverProc struct {
	cmd     *exec.Cmd
	URL     string
	logPath string
	done    chan error
}

// startServer starts `coinop serve` on a free loopback port with env (any
// COINOP_* variables of this process are left out) and waits until it is
// ready.
func startServer(ctx context.Context, bin string, env []string, logPath string) (*serverProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(withoutCoinopEnv(os.Environ()), env...)
	cmd.Env = append(cmd.Env, "COINOP_ADDR=127.0.0.1:"+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &serverProc{cmd: cmd, URL: "http://127.0.0.1:" + strconv.Itoa(port), logPath: logPath, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	for deadline := time.Now().Add(60 * time.Second); ; {
		select {
		case err := <-s.done:
			s.done <- err
			return nil, fmt.Errorf("coinop serve exited: %v\n%s", err, s.logTail())
		case <-ctx.Done():
			_ = s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get(s.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			_ = s.Stop()
			return nil, fmt.Errorf("coinop serve was not ready within 60s\n%s", s.logTail())
		}
	}
}

// Stop sends SIGTERM and waits for the server to drain, then kills it.
func (s *serverProc) Stop() error {
	if s.cmd.ProcessState != nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return errors.New("coinop serve did not stop within 30s; killed")
	}
}

func (s *serverProc) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	return tail(string(b), 3000)
}

func withoutCoinopEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "COINOP_") {
			out = append(out, kv)
		}
	}
	return out
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// createDatabase creates db on the server at adminURL and returns its URL.
func createDatabase(ctx context.Context, adminURL, db string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating database %s: %w", db, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + db
	return u.String(), nil
}

// dropDatabase drops db, disconnecting anyone still connected.
func dropDatabase(adminURL, db string, log func(string, ...any)) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err == nil {
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
		conn.Close(ctx)
	}
	if err != nil {
		log("bench: dropping database %s: %v (drop it by hand)", db, err)
	}
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the bench from inside the coinop module (make bench)")
	}
	return filepath.Dir(gomod), nil
}

// gitCommit names the commit measured, marking local changes.
func gitCommit(ctx context.Context, root string) string {
	cmd := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "(unknown)"
	}
	c := "`" + strings.TrimSpace(string(out)) + "`"
	st := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no")
	st.Dir = root
	if out, err := st.Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		c += " with local changes"
	}
	return c
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// machine describes this machine and the versions of what ran.
func (b *bench) machine(ctx context.Context) []Fact {
	facts := []Fact{
		{"CPU", fmt.Sprintf("%s, %d logical CPUs (nproc)", cpuModel(), runtime.NumCPU())},
		{"Memory", memTotal()},
		{"OS", "Linux " + strings.TrimSpace(readFile("/proc/sys/kernel/osrelease"))},
		{"Other work", b.interference(ctx)},
		{"Go", runtime.Version()},
	}
	if conn, err := pgx.Connect(ctx, b.dbURL); err == nil {
		var v string
		if conn.QueryRow(ctx, "SHOW server_version").Scan(&v) == nil {
			facts = append(facts, Fact{"PostgreSQL", v + " (" + toolVersion(ctx, "pgbench") + ")"})
		}
		conn.Close(ctx)
	}
	if info, err := b.rdb.InfoMap(ctx, "server").Result(); err == nil {
		facts = append(facts, Fact{"Redis", info["Server"]["redis_version"] + " (" + toolVersion(ctx, "redis-benchmark") + ")"})
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/gofiber/fiber/v2", "github.com/jackc/pgx/v5", "github.com/redis/go-redis/v9":
				facts = append(facts, Fact{d.Path, d.Version})
			}
		}
	}
	return facts
}

// interference describes what else was running: the load average before
// and after the bench, and how many checkpoints Postgres ran meanwhile
// (CREATE and DROP DATABASE by other users of a shared server force one
// each, and a checkpoint's writes stall commits).
func (b *bench) interference(ctx context.Context) string {
	s := fmt.Sprintf("load average %s before the bench and %s after (1, 5, 15 minutes; 2 CPUs)",
		b.loadBefore, strings.Join(firstFields(readFile("/proc/loadavg"), 3), ", "))
	if now, err := checkpoints(ctx, b.dbURL); err == nil {
		s += fmt.Sprintf("; Postgres checkpoints during the bench: %d on schedule, %d requested", now[0]-b.checkpoints[0], now[1]-b.checkpoints[1])
	}
	return s
}

// checkpoints reads Postgres's timed and requested checkpoint counts.
func checkpoints(ctx context.Context, dbURL string) ([2]int64, error) {
	var n [2]int64
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return n, err
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(ctx, "SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter").Scan(&n[0], &n[1])
	return n, err
}

func (b *bench) settings() []Fact {
	m := b.mode
	return []Fact{
		{"Mode", fmt.Sprintf("%s: each search step runs %s, the run at 70%% of max %s; bisection stops when the bracket is within %.0f%%; at most %d steps per search",
			m.Name, m.Step, m.Hold, 100*m.Precision, m.MaxSteps)},
		{"Search", "start at 250/s (purchases) or 1,000/s (reads) and double until a rate fails, then bisect geometrically between the highest pass and the lowest failure; a rate that fails is run once more and counts as failed only if it fails again (a burst of unrelated work can spoil one short run, nothing can make a run faster)"},
		{"Sustained", "p99 within the SLO, errors plus dropped requests ≤ 0.1%, at least 95% of the rate served (for pgbench, whose Poisson schedule sends a random number of transactions, at most three standard deviations fewer than the mean)"},
		{"coinop serve", fmt.Sprintf("built once with `go build`; COINOP_DB_MAX_CONNS=%d, COINOP_RATE_LIMIT=off, COINOP_LOG_LEVEL=warn, COINOP_AUTO_MIGRATE=true, everything else default (Redis pool: go-redis's default of %d)", poolSize, redisPoolSize())},
		{"pgbench", fmt.Sprintf("`pgbench --no-vacuum --protocol=prepared --client=%d --jobs=%d --rate=R --time=T --log`; latency is time + schedule lag from the per-transaction log, so it counts from each transaction's due time; "+
			"each run lasts one second longer and leaves out the transactions due in its first second, when its fresh connections are still planning their statements (the server's pool is warmed once, by an uncounted run, before its search). "+
			"pgbench spaces transactions as a Poisson process, the load tools at even intervals, which queues a little less at the same rate", poolSize, runtime.NumCPU())},
		{"redis-benchmark", fmt.Sprintf("`redis-benchmark -c %d -n %d -r %d --csv GET <prefix>key:__rand_int__` (closed model: its max is its throughput)", redisPoolSize(), m.RedisN, players)},
		{"coinop loadtest", fmt.Sprintf("open model at a fixed --rate, --players %d (chosen uniformly per request), --no-verify; purchases: mix purchase only, no retries or stale prices, quantity 1; checks: mix entitlement_check only, fixed players from a --tokens file", players)},
		{"bench drive", "open model at a fixed rate, worker pool rate/5 (16 to 2,048) like the load tool, no token (the catalog is public)"},
	}
}

func cpuModel() string {
	for _, line := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	for _, line := range strings.Split(readFile("/proc/meminfo"), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return "unknown"
}

func firstFields(s string, n int) []string {
	f := strings.Fields(s)
	return f[:min(n, len(f))]
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func toolVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return bin
	}
	return strings.TrimSpace(string(out))
}
