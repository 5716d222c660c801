package loadtest

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Actions a virtual player can take, as named in --mix and scenario files.
const (
	ActionCatalog          = "catalog"
	ActionWallet           = "wallet"
	ActionEntitlements     = "entitlements"
	ActionPurchase         = "purchase"
	ActionEntitlementCheck = "entitlement_check"
	ActionReceipt          = "receipt"
	// Server postings, sent with the server key.
	ActionAward   = "award"
	ActionSpend   = "spend"
	ActionConsume = "consume"
	// ActionTip: a player tips one of the run's creators.
	ActionTip = "tip"
)

// Actions lists every action in a stable order.
var Actions = []string{ActionCatalog, ActionWallet, ActionEntitlements, ActionPurchase, ActionEntitlementCheck, ActionReceipt, ActionAward, ActionSpend, ActionConsume, ActionTip}

// ParseMix parses --mix "purchase=50,wallet=30,catalog=20". Actions not
// named get weight 0.
func ParseMix(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("mix %q: want action=weight", part)
		}
		w, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, fmt.Errorf("mix %q: bad weight", part)
		}
		out[strings.TrimSpace(k)] = w
	}
	return out, nil
}

// ParseFund parses --fund: "1000000" grants that much of every catalog
// currency, "gold=100000,gems=500" names currencies, and both combine
// ("1000,gems=50"). The key "*" stands for every currency.
func ParseFund(s string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		cur, amt := "*", part
		if k, v, ok := strings.Cut(part, "="); ok {
			cur, amt = strings.TrimSpace(k), v
		}
		n, err := strconv.ParseInt(strings.TrimSpace(amt), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("fund %q: want a non-negative integer amount", part)
		}
		out[cur] = n
	}
	return out, nil
}

// Config is one load test run, everything flags, environment and files
// decided. Secrets are never printed or written to reports.
type Config struct {
	URL         string
	Duration    time.Duration // the load phase; with Stages, their total unless --duration is shorter
	MaxRequests int64         // hard bound on requests sent in the load phase
	Rate        float64       // open model, constant rate
	Stages      []Stage       // open model, ramp (instead of Rate)
	VUs         int           // closed model (instead of Rate/Stages)
	Workers     int           // open model worker pool size; 0 picks one from the peak rate
	Players     int
	Fund        map[string]int64

	JWTSecret   string
	JWTIssuer   string
	JWTAudience string
	AdminToken  string
	ServerToken string

	TokensFile   string
	TokenPlayers []*Player // read from TokensFile
	Scenario     Scenario
	ReceiptsFile string
	Receipts     []string // read from ReceiptsFile
	ReceiptStore string

	Split   Split // this process's part of a run split over several
	FindMax bool
	// step names one step of a capacity search ("s3.1."): the steps share
	// players, so their idempotency keys must differ.
	step string
	// MetricsInterval is how often the server's /metrics is scraped
	// during the load phase (0: never).
	MetricsInterval time.Duration
	Baseline        string
	// Fake App Store: receipts minted on the fly, and the store chaos.
	FakeStoreDir     string
	AppleBundleID    string
	AppleEnvironment string
	Chaos            ChaosOptions
	Capacity         CapacityOptions
	Replay           string
	SLOs             []SLO
	Out              string
	HTML             string
	Seed             uint64
	Timeout          time.Duration
	Verify           bool
	// Program is the server's creator program settings as the operator
	// states them (no endpoint exposes them); verification replicates the
	// server's arithmetic with them.
	Program CreatorProgram

	RunID string
}

// Defaults and hard limits.
const (
	DefaultURL         = "http://127.0.0.1:8080"
	DefaultDuration    = 30 * time.Second
	DefaultMaxRequests = 1_000_000
	DefaultRate        = 200
	DefaultPlayers     = 50
	DefaultFund        = 1_000_000
	DefaultTimeout     = 5 * time.Second
	maxPlayers         = 100_000
	maxWorkers         = 10_000
)

// Open reports whether the run uses the open (arrival rate) model.
func (c Config) Open() bool { return c.VUs == 0 }

// RunLength is how long the load phase lasts.
func (c Config) RunLength() time.Duration {
	if len(c.Stages) == 0 {
		return c.Duration
	}
	var total time.Duration
	for _, s := range c.Stages {
		total += s.Duration
	}
	if c.Duration > 0 && c.Duration < total {
		return c.Duration
	}
	return total
}

// planned is how long the whole load phase may last: one run, or every
// step of a capacity search.
func (c Config) planned() time.Duration {
	if c.FindMax {
		return c.Capacity.Step * time.Duration(c.Capacity.MaxSteps)
	}
	return c.RunLength()
}

// Scheduler returns the open model's schedule. With Stages the first stage
// ramps up from zero, as in k6; write "0s:100,60s:400" to start at 100.
func (c Config) Scheduler() (*Scheduler, error) {
	if len(c.Stages) > 0 {
		return NewScheduler(0, c.Stages)
	}
	return ConstantRate(c.Rate, c.Duration)
}

// PoolSize is how many requests can be in flight at once: the worker pool
// of the open model, or the virtual players of the closed one. With
// --workers 0 the pool is peak rate / 5 (Little's law: enough for responses
// of up to 200 ms before requests queue; queueing is measured anyway),
// between 16 and 2048.
func (c Config) PoolSize() int {
	if !c.Open() {
		return c.VUs
	}
	if c.Workers > 0 {
		return c.Workers
	}
	sched, err := c.Scheduler()
	if err != nil {
		return 16
	}
	return min(max(16, int(math.Ceil(sched.Peak()/5))), 2048)
}

// IsLoopback reports whether rawURL names a loopback host (localhost,
// 127.0.0.0/8, ::1), the only place this tool sends load without a warning.
func IsLoopback(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// ParseArgs turns command-line arguments into a validated Config, reading
// the scenario, tokens and receipts files it names. getenv supplies the
// COINOP_* fallbacks for secrets, so they need not appear in the process
// list. It returns flag.ErrHelp for -h, and otherwise an error that says
// which flag is wrong.
func ParseArgs(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	fs := flag.NewFlagSet("coinop loadtest", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.Usage = func() {
		fmt.Fprint(usage, `usage: coinop loadtest [flags]

Creates and funds players, drives a mix of catalog, wallet, entitlement and
purchase requests at a target rate (or with N virtual players), then checks
every player's ledger against what it saw succeed. Exit status: 0 ok,
1 a threshold failed or verification found a problem, 2 usage or setup error.

`)
		fs.PrintDefaults()
	}
	var (
		cfg                                     Config
		stages, fund, scenario, mix             string
		retryShare, staleShare                  float64
		slos                                    stringList
		noVerify                                bool
		maxRequests                             int64
		rate                                    float64
		jwtSecret, adminToken, srvToken, srvKey string
		split                                   string
		creators                                int
		codeShare                               float64
		tipMax                                  int64
		creatorShare, tipFee, creatorCurrencies string
	)
	fs.StringVar(&cfg.URL, "url", DefaultURL, "coinop base URL; anything but loopback prints a warning")
	fs.DurationVar(&cfg.Duration, "duration", DefaultDuration, "length of the load phase (with --stages: an upper bound)")
	fs.Int64Var(&maxRequests, "max-requests", DefaultMaxRequests, "hard bound on requests sent in the load phase")
	fs.Float64Var(&rate, "rate", DefaultRate, "open model: requests per second")
	fs.StringVar(&stages, "stages", "", "open model ramp, e.g. 30s:100,60s:400 (rate moves linearly to each target; starts from 0)")
	fs.IntVar(&cfg.VUs, "vus", 0, "closed model: this many virtual players loop back to back (instead of --rate)")
	fs.IntVar(&cfg.Workers, "workers", 0, "open model: worker pool size (0: peak rate / 5, at least 16)")
	fs.IntVar(&cfg.Players, "players", DefaultPlayers, "players to create (lt-<runid>-<n>)")
	fs.StringVar(&cfg.TokensFile, "tokens", "", "file of \"player_id token\" lines to use instead of minting players")
	fs.StringVar(&fund, "fund", strconv.Itoa(DefaultFund), "grant per player per currency: 1000000, or gold=100000,gems=500; 0 to skip funding")
	fs.StringVar(&jwtSecret, "jwt-secret", "", "HS256 secret for player tokens (env COINOP_JWT_SECRET)")
	fs.StringVar(&cfg.JWTIssuer, "jwt-issuer", "", "iss claim for minted player tokens, if the server checks it")
	fs.StringVar(&cfg.JWTAudience, "jwt-audience", "", "aud claim for minted player tokens, if the server checks it")
	fs.StringVar(&adminToken, "admin-token", "", "admin API token for funding and verification (env COINOP_ADMIN_TOKEN)")
	fs.StringVar(&srvToken, "server-token", "", "server-to-server token for entitlement checks (env COINOP_SERVER_TOKEN)")
	fs.StringVar(&srvKey, "server-key", "", "game-server key for entitlement checks and the award, spend and consume actions (env COINOP_LOADTEST_SERVER_KEY; same as --server-token)")
	fs.StringVar(&scenario, "scenario", "", "scenario YAML file (mix weights, purchase shares)")
	fs.StringVar(&mix, "mix", "", "action weights, e.g. purchase=50,wallet=30,catalog=20 (replaces the scenario's mix)")
	fs.Float64Var(&retryShare, "retry-share", 0, "share of purchases re-sent with the same Idempotency-Key (default 0.1)")
	fs.IntVar(&creators, "creators", 0, "creators the run creates, each with one code (needs the server's COINOP_CREATOR_PROGRAM=true; replaces the scenario's creators.count)")
	fs.Float64Var(&codeShare, "creator-code-share", DefaultCreatorCodeShare, "share of players who set one of the run's creator codes, so their purchases and spends credit it")
	fs.Int64Var(&tipMax, "tip-max", DefaultTipMax, "a tip (--mix tip=N) is uniform in 1..tip-max units of a tippable currency")
	fs.StringVar(&creatorShare, "creator-share", "5%", "the server's COINOP_CREATOR_SHARE, which verification checks creator earnings with")
	fs.StringVar(&tipFee, "creator-tip-fee", "0%", "the server's COINOP_CREATOR_TIP_FEE, which verification checks tip credits with")
	fs.StringVar(&creatorCurrencies, "creator-currencies", "", "the server's COINOP_CREATOR_CURRENCIES: comma list of currencies the code share covers (empty: every currency)")
	fs.Float64Var(&staleShare, "stale-share", 0, "share of purchases sent with a wrong price, expecting 409 price_mismatch (default 0.05)")
	fs.StringVar(&cfg.ReceiptsFile, "receipts", "", "`file` of pre-minted signed transactions, one per line (from coinop receipts mint); enables the receipt scenario")
	fs.StringVar(&cfg.ReceiptStore, "receipt-store", "apple", "store named in receipt redemptions")
	fs.Var(&slos, "slo", "`thresholds`, e.g. 'purchase:p99<25ms,errors<0.1%' (repeatable; exit 1 when broken)")
	fs.StringVar(&cfg.Out, "out", "", "write the report as JSON to this file")
	fs.StringVar(&cfg.HTML, "html", "", "write a self-contained HTML report to this file")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed for the request mix (0: random, printed so a run can be repeated)")
	fs.DurationVar(&cfg.Timeout, "timeout", DefaultTimeout, "per-request timeout")
	fs.BoolVar(&noVerify, "no-verify", false, "skip the verification phase")
	cfg.Capacity = DefaultCapacity()
	fs.DurationVar(&cfg.MetricsInterval, "metrics-interval", time.Second, "scrape the server's /metrics this often during the load phase for the report's server figures (0: never)")
	fs.StringVar(&cfg.Baseline, "baseline", "", "`old.json`: a report of an earlier run to compare this one with, endpoint by endpoint")
	fs.BoolVar(&cfg.FindMax, "find-max", false, "capacity mode: search for the highest rate at which every --slo holds (steps of --step, starting at --rate)")
	fs.DurationVar(&cfg.Capacity.Step, "step", cfg.Capacity.Step, "--find-max: length of each fixed-rate step")
	fs.Float64Var(&cfg.Capacity.Cap, "max-rate", cfg.Capacity.Cap, "--find-max: never try more than this many requests per second")
	fs.IntVar(&cfg.Capacity.MaxSteps, "max-steps", cfg.Capacity.MaxSteps, "--find-max: at most this many steps")
	fs.Float64Var(&cfg.Capacity.Precision, "precision", cfg.Capacity.Precision, "--find-max: stop when the lowest failing rate is within this fraction of the highest sustained one")
	fs.Float64Var(&cfg.Capacity.RPM, "rpm", cfg.Capacity.RPM, "--find-max: requests one player sends per minute, to turn the rate into concurrent players (CCU)")
	fs.Int64Var(&cfg.Capacity.CCU, "ccu", 0, "--find-max: the expected peak of concurrent players, to state the headroom")
	fs.StringVar(&cfg.FakeStoreDir, "fake-store-dir", "", "the fake store's CA `dir` (the server's COINOP_FAKE_STORE_DIR): mint App Store receipts on the fly for the receipt scenario and the store chaos")
	fs.StringVar(&cfg.AppleBundleID, "apple-bundle-id", "", "bundle id in minted transactions (env COINOP_APPLE_BUNDLE_ID)")
	fs.StringVar(&cfg.AppleEnvironment, "apple-environment", "Sandbox", "environment of minted transactions: Sandbox, Production or Xcode")
	cfg.Chaos = ChaosOptions{Waves: 1, Wait: time.Minute}
	fs.Float64Var(&cfg.Chaos.RefundShare, "refund-share", 0, "store chaos: share of redeemed transactions the store refunds mid-run (needs --fake-store-dir)")
	fs.IntVar(&cfg.Chaos.Waves, "refund-waves", 1, "store chaos: refund waves, evenly spread over the run")
	fs.Float64Var(&cfg.Chaos.DuplicateShare, "duplicate-share", 0, "store chaos: share of notifications delivered two or three times")
	fs.Float64Var(&cfg.Chaos.AbandonShare, "abandon-share", 0, "store chaos: share of deliveries the store abandons after 1 ms and delivers again")
	fs.Float64Var(&cfg.Chaos.EarlyShare, "early-refund-share", 0, "store chaos: share of purchases whose REFUND notification arrives before the player redeems them (out of order)")
	fs.DurationVar(&cfg.Chaos.Wait, "refund-wait", time.Minute, "store chaos: how long to wait after the run for refunds to reach the ledger")
	fs.StringVar(&cfg.Chaos.StoreAPIAddr, "store-api-addr", "", "store chaos: serve a fake App Store Server API on this loopback `host:port` (start the server with COINOP_APPLE_API_URL=http://host:port and the COINOP_APPLE_API_* key settings)")
	fs.DurationVar(&cfg.Chaos.StoreLatency, "store-latency", 0, "store chaos: extra latency of every fake App Store Server API answer")
	fs.Float64Var(&cfg.Chaos.StoreErrors, "store-errors", 0, "store chaos: `percent` of fake App Store Server API requests answered 5xx")
	fs.Float64Var(&cfg.Chaos.StoreTimeouts, "store-timeouts", 0, "store chaos: `percent` of fake App Store Server API requests held until the server's store timeout gives up")
	fs.StringVar(&split, "split", "", "`k/n`: run part k (1..n) of a run split over n processes, each sending every n-th request; merge their --out reports with coinop loadtest merge")
	fs.StringVar(&cfg.Replay, "replay", "", "`report.json` of an earlier run: run it again with the same seed, schedule, players and scenario (flags given here override)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var replay *RunConfig
	if cfg.Replay != "" {
		var err error
		if replay, err = loadReplay(cfg.Replay); err != nil {
			return cfg, fmt.Errorf("--replay %s: %w", cfg.Replay, err)
		}
		load := set["rate"] || set["stages"] || set["vus"]
		for name, v := range replay.replayFlags() {
			if set[name] || (load && (name == "rate" || name == "stages" || name == "vus")) {
				continue
			}
			if err := fs.Set(name, v); err != nil {
				return cfg, fmt.Errorf("--replay %s: %s %q: %w", cfg.Replay, name, v, err)
			}
		}
		if !set["slo"] {
			slos = append(slos, replay.SLOs...)
		}
		clear(set)
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	}
	if split != "" {
		var err error
		if cfg.Split, err = ParseSplit(split); err != nil {
			return cfg, fmt.Errorf("--split: %w", err)
		}
	}

	cfg.MaxRequests = maxRequests
	cfg.Verify = !noVerify
	cfg.JWTSecret = firstNonEmpty(jwtSecret, getenv("COINOP_JWT_SECRET"))
	cfg.AdminToken = firstNonEmpty(adminToken, getenv("COINOP_ADMIN_TOKEN"))
	cfg.ServerToken = firstNonEmpty(srvKey, srvToken, getenv("COINOP_LOADTEST_SERVER_KEY"), getenv("COINOP_SERVER_TOKEN"))

	switch {
	case set["vus"] && (set["rate"] || set["stages"]):
		return cfg, errors.New("--vus (closed model) cannot be combined with --rate or --stages (open model)")
	case set["rate"] && set["stages"]:
		return cfg, errors.New("give --rate or --stages, not both")
	}
	if set["vus"] && cfg.VUs <= 0 {
		return cfg, errors.New("--vus must be positive")
	}
	if stages != "" {
		st, err := ParseStages(stages)
		if err != nil {
			return cfg, fmt.Errorf("--stages: %w", err)
		}
		cfg.Stages = st
		if !set["duration"] {
			cfg.Duration = 0 // the stages set the length
		}
	} else if cfg.VUs == 0 {
		cfg.Rate = rate
	}

	var err error
	if cfg.Fund, err = ParseFund(fund); err != nil {
		return cfg, fmt.Errorf("--fund: %w", err)
	}
	cfg.Scenario = DefaultScenario()
	if replay != nil && scenario == "" {
		cfg.Scenario = replay.Scenario
	}
	if scenario != "" {
		data, err := os.ReadFile(scenario)
		if err != nil {
			return cfg, fmt.Errorf("--scenario: %w", err)
		}
		if cfg.Scenario, err = ParseScenario(data, cfg.Scenario); err != nil {
			return cfg, fmt.Errorf("--scenario %s: %w", scenario, err)
		}
	}
	if len(cfg.Scenario.Arrival) > 0 && !set["rate"] && !set["stages"] && !set["vus"] {
		cfg.Stages = cfg.Scenario.Arrival // the scenario's arrival curve
		cfg.Rate = 0
		if !set["duration"] {
			cfg.Duration = 0
		}
	}
	if mix != "" {
		if cfg.Scenario.Mix, err = ParseMix(mix); err != nil {
			return cfg, fmt.Errorf("--mix: %w", err)
		}
	}
	if set["retry-share"] {
		cfg.Scenario.Purchase.RetryShare = retryShare
	}
	if set["stale-share"] {
		cfg.Scenario.Purchase.StalePriceShare = staleShare
	}
	if set["creators"] {
		cfg.Scenario.Creators.Count = creators
	}
	if set["creator-code-share"] {
		cfg.Scenario.Creators.CodeShare = codeShare
	}
	if set["tip-max"] {
		cfg.Scenario.Creators.TipMax = tipMax
	}
	if cfg.Scenario.Creators.TipMax == 0 && !set["tip-max"] {
		cfg.Scenario.Creators.TipMax = DefaultTipMax // a replayed report from before creators
	}
	if cfg.Program.SharePPM, err = parseShare(creatorShare); err != nil {
		return cfg, fmt.Errorf("--creator-share: %w", err)
	}
	if cfg.Program.TipFeePPM, err = parseShare(tipFee); err != nil {
		return cfg, fmt.Errorf("--creator-tip-fee: %w", err)
	}
	for _, cur := range strings.Split(creatorCurrencies, ",") {
		if cur = strings.TrimSpace(cur); cur != "" {
			cfg.Program.Currencies = append(cfg.Program.Currencies, cur)
		}
	}
	if cfg.ReceiptsFile != "" {
		f, err := os.Open(cfg.ReceiptsFile)
		if err != nil {
			return cfg, fmt.Errorf("--receipts: %w", err)
		}
		cfg.Receipts, err = ReadReceipts(f)
		f.Close()
		if err != nil {
			return cfg, fmt.Errorf("--receipts %s: %w", cfg.ReceiptsFile, err)
		}
		if cfg.Scenario.Mix[ActionReceipt] == 0 && mix == "" {
			cfg.Scenario.Mix[ActionReceipt] = 5 // asking for receipts means running them
		}
	}
	cfg.AppleBundleID = firstNonEmpty(cfg.AppleBundleID, getenv("COINOP_APPLE_BUNDLE_ID"))
	if cfg.FakeStoreDir != "" && cfg.Scenario.Mix[ActionReceipt] == 0 && mix == "" && len(cfg.Scenario.Archetypes) == 0 {
		cfg.Scenario.Mix[ActionReceipt] = 5 // a fake store means redeeming from it
	}
	if cfg.Chaos.Enabled() && cfg.FakeStoreDir == "" {
		return cfg, errors.New("store chaos (--refund-share, --duplicate-share, --abandon-share, --early-refund-share, --store-api-addr) needs the fake store: give --fake-store-dir")
	}
	if err := cfg.Chaos.Validate(); err != nil {
		return cfg, err
	}
	if cfg.TokensFile != "" {
		f, err := os.Open(cfg.TokensFile)
		if err != nil {
			return cfg, fmt.Errorf("--tokens: %w", err)
		}
		cfg.TokenPlayers, err = ReadTokens(f)
		f.Close()
		if err != nil {
			return cfg, fmt.Errorf("--tokens %s: %w", cfg.TokensFile, err)
		}
		if set["players"] && cfg.Players < len(cfg.TokenPlayers) {
			cfg.TokenPlayers = cfg.TokenPlayers[:max(cfg.Players, 0)]
		}
		cfg.Players = len(cfg.TokenPlayers)
	}
	for _, s := range slos {
		parsed, err := ParseSLOs(s)
		if err != nil {
			return cfg, fmt.Errorf("--slo: %w", err)
		}
		cfg.SLOs = append(cfg.SLOs, parsed...)
	}
	if cfg.FindMax {
		switch {
		case !cfg.Open() || len(cfg.Stages) > 0:
			return cfg, errors.New("--find-max runs fixed-rate steps of the open model: give --rate (the first step), not --vus or --stages")
		case len(cfg.SLOs) == 0:
			return cfg, errors.New("--find-max needs --slo: the thresholds decide which rates are sustained")
		case cfg.Capacity.Step <= 0:
			return cfg, errors.New("--step must be positive")
		case cfg.Capacity.Cap < cfg.Rate || cfg.Capacity.Cap <= 0:
			return cfg, errors.New("--max-rate must be positive and at least --rate")
		case cfg.Capacity.MaxSteps < 1 || cfg.Capacity.MaxSteps > 100:
			return cfg, errors.New("--max-steps must be in 1..100")
		case !(cfg.Capacity.Precision > 0 && cfg.Capacity.Precision < 1):
			return cfg, errors.New("--precision must be between 0 and 1, e.g. 0.05")
		case !(cfg.Capacity.RPM > 0) || math.IsInf(cfg.Capacity.RPM, 0):
			return cfg, errors.New("--rpm must be a positive number of requests per player per minute")
		case cfg.Capacity.CCU < 0:
			return cfg, errors.New("--ccu must not be negative")
		}
		cfg.Capacity.Start = cfg.Rate
		cfg.Duration = cfg.Capacity.Step // the budget and token lifetimes follow one step
	}
	cfg.RunID = NewRunID()
	if cfg.Seed == 0 {
		cfg.Seed = randomSeed()
	}
	return cfg, cfg.Validate()
}

// Validate checks that the run is bounded and has what its phases need.
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: want http(s)://host[:port]", c.URL)
	}
	if c.RunLength() <= 0 {
		return errors.New("--duration must be positive: every run is bounded in time")
	}
	if c.MaxRequests <= 0 {
		return errors.New("--max-requests must be positive: every run is bounded in requests")
	}
	if c.Open() {
		if _, err := c.Scheduler(); err != nil {
			return fmt.Errorf("rate: %w", err)
		}
	}
	if c.Timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	if c.MetricsInterval < 0 || (c.MetricsInterval > 0 && c.MetricsInterval < 100*time.Millisecond) {
		return errors.New("--metrics-interval must be 0 (never) or at least 100ms")
	}
	if c.Players <= 0 || c.Players > maxPlayers {
		return fmt.Errorf("--players must be in 1..%d", maxPlayers)
	}
	if c.Workers < 0 || c.Workers > maxWorkers || c.VUs > maxWorkers {
		return fmt.Errorf("--workers and --vus must be at most %d", maxWorkers)
	}
	if len(c.TokenPlayers) == 0 && c.JWTSecret == "" {
		return errors.New("player tokens need --jwt-secret (or COINOP_JWT_SECRET), or a --tokens file")
	}
	if c.AdminToken == "" {
		funding := false
		for _, amt := range c.Fund {
			funding = funding || amt > 0
		}
		if funding || c.Verify {
			return errors.New("funding and verification use the admin API: give --admin-token (or COINOP_ADMIN_TOKEN), or --fund 0 --no-verify")
		}
		if c.Scenario.Creators.Count > 0 {
			return errors.New("creating creators (--creators) uses the admin API: give --admin-token (or COINOP_ADMIN_TOKEN)")
		}
	}
	if c.Scenario.Creators.Count == 0 && c.Scenario.Uses(ActionTip) {
		return errors.New("tips need creators to tip: give --creators (or creators.count in the scenario)")
	}
	if err := c.Program.Validate(); err != nil {
		return err
	}
	return c.Scenario.Validate()
}

// Describe is a one-line summary of the run's shape, without secrets.
func (c Config) Describe() string {
	var load string
	switch {
	case !c.Open():
		load = fmt.Sprintf("closed model, %d virtual players for %s", c.VUs, c.RunLength())
	case len(c.Stages) > 0:
		var parts []string
		for _, s := range c.Stages {
			parts = append(parts, fmt.Sprintf("%s:%g", s.Duration, s.Target))
		}
		load = fmt.Sprintf("open model, stages %s", strings.Join(parts, ","))
		if c.RunLength() < c.totalStages() {
			load += fmt.Sprintf(" cut at %s", c.RunLength())
		}
	default:
		load = fmt.Sprintf("open model, %g req/s for %s", c.Rate, c.Duration)
	}
	out := fmt.Sprintf("%s, at most %d requests, %d players, seed %d", load, c.MaxRequests, c.Players, c.Seed)
	if c.Split.N > 1 {
		out += fmt.Sprintf(", part %s", c.Split)
	}
	return out
}

func (c Config) totalStages() time.Duration {
	var t time.Duration
	for _, s := range c.Stages {
		t += s.Duration
	}
	return t
}

// Split is one process's part of a run shared by N processes: part K
// (1-based) sends the open model's requests i with i mod N = K-1 (every
// process follows the whole schedule and sends its share), or the closed
// model's virtual players with that index. The zero Split is the whole run.
type Split struct{ K, N int }

// ParseSplit parses "k/n" with 1 <= k <= n.
func ParseSplit(s string) (Split, error) {
	a, b, ok := strings.Cut(s, "/")
	k, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || n > 1000 || k < 1 || k > n {
		return Split{}, fmt.Errorf("%q: want k/n with 1 <= k <= n <= 1000, e.g. 1/2", s)
	}
	return Split{K: k, N: n}, nil
}

// String is "k/n", or "" for a whole run.
func (s Split) String() string {
	if s.N <= 1 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.K, s.N)
}

// mine reports whether request (or virtual player) i belongs to this part.
func (s Split) mine(i int64) bool { return s.N <= 1 || i%int64(s.N) == int64(s.K-1) }

// randomSeed picks a seed when none was given; it is printed, so the run's
// request mix can be repeated with --seed.
func randomSeed() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return binary.LittleEndian.Uint64(b[:])>>1 | 1
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
