package loadtest

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func parse(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	return ParseArgs(args, func(k string) string { return env[k] }, &strings.Builder{})
}

var testEnv = map[string]string{"COINOP_JWT_SECRET": "s", "COINOP_ADMIN_TOKEN": "a"}

func TestDefaultsAreLoopbackAndBounded(t *testing.T) {
	cfg, err := parse(t, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "http://127.0.0.1:8080" || !IsLoopback(cfg.URL) {
		t.Errorf("default URL %s", cfg.URL)
	}
	if cfg.Duration != 30*time.Second || cfg.MaxRequests != 1_000_000 || cfg.Rate != 200 || !cfg.Open() {
		t.Errorf("defaults: %+v", cfg)
	}
	if cfg.Timeout != 5*time.Second || cfg.Players != 50 || cfg.Fund["*"] != 1_000_000 || !cfg.Verify {
		t.Errorf("defaults: %+v", cfg)
	}
	if cfg.Seed == 0 || len(cfg.RunID) != 8 {
		t.Errorf("seed %d run id %q", cfg.Seed, cfg.RunID)
	}
	if !strings.Contains(cfg.Describe(), "seed ") || strings.Contains(cfg.Describe(), "s,") && strings.Contains(cfg.Describe(), testEnv["COINOP_ADMIN_TOKEN"]+" ") {
		t.Errorf("describe: %s", cfg.Describe())
	}
}

func TestFlagsOverrideTheEnvironment(t *testing.T) {
	cfg, err := parse(t, map[string]string{"COINOP_JWT_SECRET": "env-secret", "COINOP_ADMIN_TOKEN": "env-admin", "COINOP_SERVER_TOKEN": "env-server"},
		"--jwt-secret", "flag-secret", "--server-token", "flag-server")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.JWTSecret != "flag-secret" || cfg.AdminToken != "env-admin" || cfg.ServerToken != "flag-server" {
		t.Fatalf("secret %q admin %q server %q", cfg.JWTSecret, cfg.AdminToken, cfg.ServerToken)
	}
}

func TestStagesSetTheRunLength(t *testing.T) {
	cfg, err := parse(t, testEnv, "--stages", "30s:100,60s:400")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RunLength() != 90*time.Second {
		t.Errorf("run length %v, want the stages' 90s", cfg.RunLength())
	}
	cfg, err = parse(t, testEnv, "--stages", "30s:100,60s:400", "--duration", "45s")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RunLength() != 45*time.Second || !strings.Contains(cfg.Describe(), "cut at 45s") {
		t.Errorf("run length %v, describe %s", cfg.RunLength(), cfg.Describe())
	}
}

func TestScenarioFileThenFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(path, []byte("mix:\n  purchase: 70\n  wallet: 30\npurchase:\n  retry_share: 0.2\n  max_quantity: 5\n"), 0o600)
	cfg, err := parse(t, testEnv, "--scenario", path, "--stale-share", "0.1")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Scenario
	if s.Mix[ActionPurchase] != 70 || s.Mix[ActionWallet] != 30 || s.Mix[ActionCatalog] != 0 {
		t.Errorf("mix %v: the file's mix should replace the default", s.Mix)
	}
	if s.Purchase.RetryShare != 0.2 || s.Purchase.StalePriceShare != 0.1 || s.Purchase.MaxQuantity != 5 {
		t.Errorf("purchase %+v", s.Purchase)
	}
	cfg, err = parse(t, testEnv, "--scenario", path, "--mix", "catalog=1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scenario.Mix[ActionPurchase] != 0 || cfg.Scenario.Mix[ActionCatalog] != 1 {
		t.Errorf("--mix should replace the file's mix: %v", cfg.Scenario.Mix)
	}
}

func TestExampleScenarioFileParses(t *testing.T) {
	cfg, err := parse(t, testEnv, "--scenario", filepath.Join("testdata", "scenario.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Scenario.Mix; m[ActionCatalog] != 15 || m[ActionPurchase] != 30 || m[ActionReceipt] != 0 || len(m) != 6 {
		t.Fatalf("mix %v", m)
	}
	if p := cfg.Scenario.Purchase; p.RetryShare != 0.1 || p.StalePriceShare != 0.05 || p.MaxQuantity != 3 {
		t.Fatalf("purchase %+v", p)
	}
}

func TestScenarioFileRejectsTypos(t *testing.T) {
	for _, bad := range []string{
		"mix:\n  purchse: 10\n",
		"mixx:\n  purchase: 10\n",
		"purchase:\n  retry_share: 2\n",
		"purchase:\n  retry_share: 0.6\n  stale_price_share: 0.6\n",
		"mix:\n  purchase: 0\n",
		"mix:\n  purchase: -1\n",
		"purchase:\n  max_quantity: 0\n",
		"mix: [1, 2]\n",
	} {
		if _, err := ParseScenario([]byte(bad), DefaultScenario()); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParseFund(t *testing.T) {
	got, err := ParseFund("1000,gems=50")
	if err != nil || got["*"] != 1000 || got["gems"] != 50 {
		t.Fatalf("ParseFund = %v, %v", got, err)
	}
	for _, bad := range []string{"lots", "gold=-1", "gold=1.5"} {
		if _, err := ParseFund(bad); err == nil {
			t.Errorf("ParseFund(%q) accepted", bad)
		}
	}
	if f := fundingFor(map[string]int64{"*": 10, "gems": 0, "tokens": 5}, []string{"gold", "gems"}); len(f) != 2 || f["gold"] != 10 || f["tokens"] != 5 {
		t.Fatalf("fundingFor = %v", f)
	}
}

func TestRequirementsOfEachPhase(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"COINOP_ADMIN_TOKEN": "a"}, nil, "--jwt-secret"},
		{map[string]string{"COINOP_JWT_SECRET": "s"}, nil, "--admin-token"},
		{testEnv, []string{"--players", "0"}, "--players"},
		{testEnv, []string{"--timeout", "0s"}, "--timeout"},
		{testEnv, []string{"--rate", "0"}, "never send"},
		{testEnv, []string{"--vus", "0"}, "--vus"},
		{testEnv, []string{"--workers", "-1"}, "--workers"},
	}
	for _, c := range cases {
		if _, err := parse(t, c.env, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: error %v, want %q", c.env, c.args, err, c.want)
		}
	}
	// Without funding and verification the admin token is not needed.
	if _, err := parse(t, map[string]string{"COINOP_JWT_SECRET": "s"}, "--fund", "0", "--no-verify"); err != nil {
		t.Errorf("--fund 0 --no-verify: %v", err)
	}
	if _, err := parse(t, testEnv, "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestTokensFileReplacesMintedPlayers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.txt")
	os.WriteFile(path, []byte("# players\nalice tok-a\nbob,tok-b\n\ncarol\ttok-c\n"), 0o600)
	cfg, err := parse(t, map[string]string{"COINOP_ADMIN_TOKEN": "a"}, "--tokens", path, "--players", "2")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Players != 2 || cfg.TokenPlayers[1].ID != "bob" || cfg.TokenPlayers[1].Token != "tok-b" {
		t.Fatalf("players %d %+v", cfg.Players, cfg.TokenPlayers)
	}
	for _, bad := range []string{"alice\n", "alice a b\n", "alice a\nalice b\n", "# nobody\n"} {
		if _, err := ReadTokens(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadTokens accepted %q", bad)
		}
	}
}

func TestReadReceipts(t *testing.T) {
	got, err := ReadReceipts(strings.NewReader("# minted\n a.b.c \n\nd.e.f\n"))
	if err != nil || len(got) != 2 || got[0] != "a.b.c" {
		t.Fatalf("ReadReceipts = %v, %v", got, err)
	}
	if _, err := ReadReceipts(strings.NewReader("not-a-jws\n")); err == nil {
		t.Fatal("accepted a line that is not a JWS")
	}
	p := NewReceiptPool(got)
	a, _ := p.Take()
	b, _ := p.Take()
	if _, ok := p.Take(); ok || a == b {
		t.Fatal("the pool must hand out each transaction once")
	}
}

func TestIsLoopback(t *testing.T) {
	for url, want := range map[string]bool{
		"http://127.0.0.1:8080":        true,
		"http://127.9.9.9":             true,
		"http://localhost:8080":        true,
		"http://LOCALHOST":             true,
		"http://api.localhost:1":       true,
		"http://[::1]:8080":            true,
		"https://staging.example.com":  false,
		"http://10.0.0.5:8080":         false,
		"http://127.0.0.1.example.com": false,
		"http://0.0.0.0:8080":          false,
		"::not a url":                  false,
	} {
		if got := IsLoopback(url); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", url, got, want)
		}
	}
}

func TestNonLoopbackTargetIsAllowedWithAWarning(t *testing.T) {
	cfg, err := parse(t, testEnv, "--url", "https://staging.example.com")
	if err != nil {
		t.Fatalf("a staging URL must be allowed: %v", err)
	}
	w := loopbackWarning(cfg)
	if !strings.HasPrefix(w, "WARNING: https://staging.example.com is not a loopback address") || !strings.Contains(w, "1000000 requests") {
		t.Fatalf("warning %q", w)
	}
	cfg.URL = DefaultURL
	if loopbackWarning(cfg) != "" {
		t.Fatal("loopback target warned")
	}
}

func TestMintedTokensCarryWhatTheServerChecks(t *testing.T) {
	now := time.Now()
	tok, err := MintToken([]byte("k"), "lt-1-0", now, time.Hour, "coinop", "game")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte("k"), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuer("coinop"), jwt.WithAudience("game"))
	if err != nil {
		t.Fatal(err)
	}
	if sub, _ := parsed.Claims.GetSubject(); sub != "lt-1-0" {
		t.Fatalf("sub %q", sub)
	}
}

func TestPickOffersKeepsOnlyWhatCanBeBoughtRepeatedly(t *testing.T) {
	doc := newFakeCoinop().doc
	now := time.Now()
	offers, skipped := PickOffers(doc.Catalog, now, now.Add(time.Minute))
	var ids []string
	for _, o := range offers {
		ids = append(ids, o.ItemID)
	}
	if strings.Join(ids, ",") != "potion,elixir,founder,starter" {
		t.Fatalf("offers %v", ids)
	}
	joined := strings.Join(skipped, "; ")
	for _, want := range []string{"sword is durable", "flash is not on sale", "knight contains item sword"} {
		if !strings.Contains(joined, want) {
			t.Errorf("skipped lacks %q: %s", want, joined)
		}
	}
	if offers[3].Grants["potion"] != 5 || !offers[3].Bundle {
		t.Errorf("bundle offer %+v", offers[3])
	}
	if offers[2].Limits["founder"] != 1 || offers[0].Limits != nil {
		t.Errorf("limits: founder %v, potion %v", offers[2].Limits, offers[0].Limits)
	}
}

func TestServerKeyComesFromItsFlagOrEnvironment(t *testing.T) {
	env := map[string]string{"COINOP_JWT_SECRET": "s", "COINOP_ADMIN_TOKEN": "a", "COINOP_LOADTEST_SERVER_KEY": "env-key", "COINOP_SERVER_TOKEN": "env-token"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "env-key"},
		{[]string{"--server-token", "flag-token"}, "flag-token"},
		{[]string{"--server-key", "flag-key", "--server-token", "flag-token"}, "flag-key"},
	} {
		cfg, err := parse(t, env, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ServerToken != c.want {
			t.Errorf("%v: server key %q, want %q", c.args, cfg.ServerToken, c.want)
		}
	}
	cfg, err := parse(t, testEnv, "--mix", "award=1,spend=1,consume=1")
	if err != nil || !cfg.Scenario.Uses(ActionAward) || !cfg.Scenario.Uses(ActionConsume) {
		t.Fatalf("posting actions in --mix: %v", err)
	}
}
