package loadtest

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func defaultProgram() *CreatorProgram { return &CreatorProgram{SharePPM: 50_000} }

// creatorArgs is a run with creators, tips and spends mixed into purchases.
var creatorArgs = []string{"--duration", "1s", "--rate", "60", "--players", "6", "--seed", "7",
	"--creators", "2", "--mix", "purchase=3,tip=2,spend=1,wallet=1"}

func TestCreatorEarningsMatchTheSumOfTheirShares(t *testing.T) {
	f := newFakeCoinop()
	f.program = defaultProgram()
	url := f.start(t)
	out := filepath.Join(t.TempDir(), "report.json")
	html := filepath.Join(t.TempDir(), "report.html")
	code, stdout, stderr := runCommand(t, f, url, append(creatorArgs, "--out", out, "--html", html)...)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"note: creators: 2 (lt-", "3 of 6 players support one with its code", "creators: 2 (share 5%, tip fee 0%, every currency)",
		"2 of 2 earn exactly the sum of their shares", "result: ok"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	m := regexp.MustCompile(`creators: 2 \([^)]*\): (\d+) purchases and spends under their codes and (\d+) tips`).FindStringSubmatch(stdout)
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Fatalf("the run credited too little to prove anything:\n%s", stdout)
	}

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	v := rep.Verification
	if v == nil || len(v.Creators) != 2 || v.CreatorProgram == nil || v.CreatorProgram.SharePPM != 50_000 {
		t.Fatalf("report verification: %+v", v)
	}
	// The fake credits exactly; the tool's expectation must be the same
	// sum, to the micro-unit, and not trivially zero.
	for _, ch := range v.Creators {
		if !ch.OK || len(ch.ExpectedMicro) == 0 {
			t.Errorf("creator %+v", ch)
		}
		for cur, m := range ch.ExpectedMicro {
			if ch.EarnedMicro[cur] != m {
				t.Errorf("%s %s: expected %d, earned %d", ch.CreatorID, cur, m, ch.EarnedMicro[cur])
			}
		}
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<h3>Creator earnings</h3>", v.Creators[0].CreatorID, "exact"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
}

func TestVerificationCatchesOneMicroUnitOfCreatorEarnings(t *testing.T) {
	f := newFakeCoinop()
	f.program = defaultProgram()
	f.creditOff = 1
	url := f.start(t)
	code, stdout, _ := runCommand(t, f, url, creatorArgs...)
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d\n%s", code, ExitFailed, stdout)
	}
	for _, want := range []string{"PROBLEM creator_earnings: creator lt-", "(1 micro-units more)", "MISMATCH", "result: FAILED"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "give --creator-share") {
		t.Errorf("a one-off fault is not a different share:\n%s", stdout)
	}
}

func TestCreatorMismatchNamesTheShareTheServerRunsWith(t *testing.T) {
	f := newFakeCoinop()
	f.program = &CreatorProgram{SharePPM: 100_000, TipFeePPM: 100_000}
	url := f.start(t)
	code, stdout, _ := runCommand(t, f, url, creatorArgs...)
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d\n%s", code, ExitFailed, stdout)
	}
	for _, want := range []string{"COINOP_CREATOR_SHARE=10%? give --creator-share 10%", "COINOP_CREATOR_TIP_FEE=10%? give --creator-tip-fee 10%",
		"tips were answered with a creator_credit other than the tip less the fee"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	// Told the server's settings, the same run verifies.
	code, stdout, _ = runCommand(t, f, url, append(creatorArgs, "--creator-share", "10%", "--creator-tip-fee", "10")...)
	if code != ExitOK {
		t.Fatalf("with the server's settings: exit %d\n%s", code, stdout)
	}
}

func TestCreatorsNeedTheServersProgram(t *testing.T) {
	f := newFakeCoinop()
	url := f.start(t)
	code, _, stderr := runCommand(t, f, url, creatorArgs...)
	if code != ExitSetup || !strings.Contains(stderr, "COINOP_CREATOR_PROGRAM=true") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestCreatorOptionsAreValidated(t *testing.T) {
	env := func(k string) string {
		return map[string]string{"COINOP_JWT_SECRET": "s", "COINOP_ADMIN_TOKEN": "a"}[k]
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"negative creators", []string{"--creators", "-1"}, "creators.count: must be in 0..1000"},
		{"too many creators", []string{"--creators", "1001"}, "creators.count: must be in 0..1000"},
		{"code share above one", []string{"--creators", "1", "--creator-code-share", "1.5"}, "creators.code_share: must be in [0, 1]"},
		{"code share not a number", []string{"--creators", "1", "--creator-code-share", "NaN"}, "creators.code_share"},
		{"tip of nothing", []string{"--creators", "1", "--tip-max", "0"}, "creators.tip_max: must be in 1..1000000"},
		{"tips without creators", []string{"--mix", "purchase=1,tip=1"}, "tips need creators"},
		{"share above 100%", []string{"--creator-share", "100.5%"}, "--creator-share: \"100.5%\": at most 100%"},
		{"share not a percentage", []string{"--creator-share", "five"}, "--creator-share: \"five\": want a percentage"},
		{"fee with five decimals", []string{"--creator-tip-fee", "1.00001%"}, "--creator-tip-fee"},
		{"negative fee", []string{"--creator-tip-fee", "-1%"}, "--creator-tip-fee"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseArgs(c.args, env, &strings.Builder{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	t.Run("creators need the admin token", func(t *testing.T) {
		noAdmin := func(k string) string { return map[string]string{"COINOP_JWT_SECRET": "s"}[k] }
		_, err := ParseArgs([]string{"--creators", "1", "--fund", "0", "--no-verify"}, noAdmin, &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), "--admin-token") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("flags set the mix and the program", func(t *testing.T) {
		cfg, err := ParseArgs([]string{"--creators", "4", "--creator-code-share", "0.25", "--tip-max", "3", "--creator-share", "2.5%",
			"--creator-tip-fee", "0.0001%", "--creator-currencies", "gems, gold", "--mix", "tip=1"}, env, &strings.Builder{})
		if err != nil {
			t.Fatal(err)
		}
		want := CreatorMix{Count: 4, CodeShare: 0.25, TipMax: 3}
		if cfg.Scenario.Creators != want || cfg.Program.SharePPM != 25_000 || cfg.Program.TipFeePPM != 1 ||
			strings.Join(cfg.Program.Currencies, ",") != "gems,gold" {
			t.Fatalf("creators %+v, program %+v", cfg.Scenario.Creators, cfg.Program)
		}
	})
	t.Run("defaults are the server's", func(t *testing.T) {
		cfg, err := ParseArgs(nil, env, &strings.Builder{})
		if err != nil {
			t.Fatal(err)
		}
		want := CreatorMix{Count: 0, CodeShare: DefaultCreatorCodeShare, TipMax: DefaultTipMax}
		if cfg.Scenario.Creators != want || cfg.Program.SharePPM != 50_000 || cfg.Program.TipFeePPM != 0 || cfg.Program.Currencies != nil {
			t.Fatalf("creators %+v, program %+v", cfg.Scenario.Creators, cfg.Program)
		}
	})
}

func TestScenarioCreatorsSection(t *testing.T) {
	s, err := ParseScenario([]byte("creators: {count: 3, code_share: 0.2, tip_max: 7}\nmix: {purchase: 1, tip: 1}\n"), DefaultScenario())
	if err != nil {
		t.Fatal(err)
	}
	if want := (CreatorMix{Count: 3, CodeShare: 0.2, TipMax: 7}); s.Creators != want {
		t.Fatalf("creators %+v, want %+v", s.Creators, want)
	}
	for doc, want := range map[string]string{
		"creators: {count: 2, codes: 1}":   "creators.codes: unknown field (want count, code_share, tip_max)",
		"creators: {count: 1.5}":           "creators.count: want a whole number",
		"creators: {count: 5000}":          "creators.count: want 0..1000 creators",
		"creators: {code_share: lots}":     "creators.code_share: want a number",
		"creators: {count: 1, tip_max: 0}": "creators.tip_max: must be in 1..1000000",
		"creators: 3":                      "creators: want a mapping",
	} {
		if _, err := ParseScenario([]byte(doc), DefaultScenario()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", doc, err, want)
		}
	}
}

func TestCreditArithmeticIsTheServersRule(t *testing.T) {
	p := CreatorProgram{SharePPM: 50_000, TipFeePPM: 25_000}
	cases := []struct {
		name             string
		currency         string
		spent, itemShare int64
		want             int64
		ok               bool
		prog             CreatorProgram
	}{
		{"5% of one unit is 0.05", "gems", 1, 0, 50_000, true, p},
		{"a million purchases of one unit earn 50,000 units", "gems", 1_000_000, 0, 50_000 * microPerUnit, true, p},
		{"an item creator's 97% leaves the code 3%", "gems", 10, 970_000, 300_000, true, p},
		{"an item creator's 100% leaves the code nothing", "gems", 10, maxSharePPM, 0, true, p},
		{"an uncovered currency earns nothing", "gold", 10, 0, 0, true, CreatorProgram{SharePPM: 50_000, Currencies: []string{"gems"}}},
		{"a covered currency earns", "gems", 10, 0, 500_000, true, CreatorProgram{SharePPM: 50_000, Currencies: []string{"gems"}}},
		{"an overflow is refused", "gems", math.MaxInt64 / 1000, 0, 0, false, p},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := c.prog.codeCredit(c.currency, c.spent, c.itemShare)
			if got != c.want || ok != c.ok {
				t.Fatalf("codeCredit = %d, %v; want %d, %v", got, ok, c.want, c.ok)
			}
		})
	}
	if got, _ := p.tipCredit(40); got != 39_000_000 {
		t.Errorf("a tip of 40 less 2.5%% credits %d micro-units, want 39,000,000", got)
	}
	for s, ppm := range map[string]int64{"5%": 50_000, "2.5": 25_000, "0.0001%": 1, "100%": maxSharePPM, "0": 0} {
		if got, err := parseShare(s); err != nil || got != ppm {
			t.Errorf("parseShare(%q) = %d, %v; want %d", s, got, err, ppm)
		}
		if got, _ := parseShare(formatShare(ppm)); got != ppm {
			t.Errorf("formatShare(%d) = %q does not read back", ppm, formatShare(ppm))
		}
	}
	for m, s := range map[int64]string{50_000: "0.05", 3 * microPerUnit: "3", -1_500_000: "-1.5", 1: "0.000001"} {
		if got := formatMicro(m); got != s {
			t.Errorf("formatMicro(%d) = %q, want %q", m, got, s)
		}
		if back, ok := parseMicro(s); m >= 0 && (!ok || back != m) {
			t.Errorf("parseMicro(%q) = %d, %v", s, back, ok)
		}
	}
	if _, ok := parseMicro("1.0000001"); ok {
		t.Error("parseMicro took seven decimals")
	}
}

// TestCreatorCreditsCountLostAnswersOnce: a purchase and a tip whose
// answers were lost but which the ledger shows committed credit the creator
// once each, by key; an acknowledged purchase retried (the same purchase
// id) counts once.
func TestCreatorCreditsCountLostAnswersOnce(t *testing.T) {
	pid := "p1"
	fx := &Fixture{Program: CreatorProgram{SharePPM: 50_000}, Creators: []*RunCreator{{ID: "c0"}, {ID: "c1"}}, ItemShares: map[string]int64{}}
	p := &Player{ID: pid, creator: "c0"}
	meta := func(key string) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"idempotency_key": key})
		return b
	}
	obs := NewObserved()
	obs.Purchase(pid, "k1", PurchaseRequest{ItemID: "potion", Quantity: 2, Price: Price{"gems", 3}}, &PurchaseResult{PurchaseID: "pur-1"})
	obs.Purchase(pid, "k1", PurchaseRequest{ItemID: "potion", Quantity: 2, Price: Price{"gems", 3}}, &PurchaseResult{PurchaseID: "pur-1"})
	obs.UnknownPurchase(pid, "k2", PurchaseRequest{ItemID: "potion", Quantity: 1, Price: Price{"gems", 3}})
	obs.UnknownTip(pid, "c1", "k3", TipRequest{Currency: "gems", Amount: 4})
	obs.UnknownTip(pid, "c1", "k4", TipRequest{Currency: "gems", Amount: 9}) // never committed
	buy := func(n int64) []LedgerEntry { return move(pid, "purchases", "currency", "gems", -n) }
	ledger := []LedgerTransaction{
		{ID: 1, Kind: KindAdminGrant, Reference: "g", Entries: move(pid, "admin_grants", "currency", "gems", 100)},
		{ID: 2, Kind: KindPurchase, Reference: "pur-1", Metadata: meta("k1"), Entries: buy(6)},
		{ID: 3, Kind: KindPurchase, Reference: "pur-2", Metadata: meta("k2"), Entries: buy(3)},
		{ID: 4, Kind: KindTip, Reference: "tip-1", Metadata: meta("k3"), Entries: move(pid, "creator_tips", "currency", "gems", -4)},
	}
	seen := obs.Player(pid)
	seen.Grants["g"] = SeenGrant{ID: "g", Currencies: map[string]int64{"gems": 100}}
	probs, confirmed := checkPlayer(pid, seen, ledger, 0, map[string]int64{"gems": 87}, map[string]int64{})
	if len(probs) != 0 || len(confirmed) != 2 {
		t.Fatalf("problems %v, confirmed %v", probs, confirmed)
	}
	tally := newCreditTally()
	tally.addPlayer(fx, p, seen, confirmed)
	if got := tally.expected["c0"]["gems"]; got != (6+3)*50_000 {
		t.Errorf("c0 expects %d micro-units, want %d", got, (6+3)*50_000)
	}
	if got := tally.expected["c1"]["gems"]; got != 4*microPerUnit {
		t.Errorf("c1 expects %d micro-units, want %d", got, 4*microPerUnit)
	}
	if tally.credited["c0"] != 2 || tally.tips["c1"] != 1 {
		t.Errorf("credited %v, tips %v", tally.credited, tally.tips)
	}
}

func TestMergedReportsKeepEveryPartsCreators(t *testing.T) {
	part := func(id string, ok bool) *Verification {
		return &Verification{OK: ok, TipsObserved: 3, Counts: ProblemCount{}, CreatorProgram: defaultProgram(),
			Creators: []CreatorCheck{{CreatorID: id, OK: ok, ExpectedMicro: map[string]int64{"gems": 5}, EarnedMicro: map[string]int64{"gems": 5}}}}
	}
	v := mergeVerification(mergeVerification(nil, part("lt-a-c0", true)), part("lt-b-c0", false))
	if v.OK || v.TipsObserved != 6 || len(v.Creators) != 2 || v.Creators[1].CreatorID != "lt-b-c0" || v.CreatorProgram == nil {
		t.Fatalf("merged %+v", v)
	}
}

func TestReplayKeepsTheCreatorsAndTheProgram(t *testing.T) {
	f := newFakeCoinop()
	f.program = &CreatorProgram{SharePPM: 25_000, TipFeePPM: 100_000}
	url := f.start(t)
	out := filepath.Join(t.TempDir(), "report.json")
	code, stdout, _ := runCommand(t, f, url, append(creatorArgs, "--creator-code-share", "0.4", "--tip-max", "4",
		"--creator-share", "2.5%", "--creator-tip-fee", "10%", "--out", out)...)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stdout)
	}
	env := func(k string) string {
		return map[string]string{"COINOP_JWT_SECRET": "s", "COINOP_ADMIN_TOKEN": "a"}[k]
	}
	cfg, err := ParseArgs([]string{"--replay", out}, env, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (CreatorMix{Count: 2, CodeShare: 0.4, TipMax: 4}); cfg.Scenario.Creators != want || cfg.Scenario.Mix[ActionTip] != 2 {
		t.Errorf("replayed creators %+v, mix %v", cfg.Scenario.Creators, cfg.Scenario.Mix)
	}
	if cfg.Program.SharePPM != 25_000 || cfg.Program.TipFeePPM != 100_000 {
		t.Errorf("replayed program %+v", cfg.Program)
	}
}

// TestTipsWithLostAnswersCountOnce: tips the server applies and then
// answers 503 are sent again with the same key; the replayed 201 settles
// them, and each credits its creator once.
func TestTipsWithLostAnswersCountOnce(t *testing.T) {
	f := newFakeCoinop()
	f.program = defaultProgram()
	f.failTips.Store(4)
	url := f.start(t)
	code, stdout, _ := runCommand(t, f, url, creatorArgs...)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stdout)
	}
	if f.failTips.Load() >= 0 {
		t.Fatalf("fewer than 4 tips were sent:\n%s", stdout)
	}
	// Each lost answer is one tip request more than tips acknowledged.
	sent := regexp.MustCompile(`(?m)^\s*tip\s+(\d+)\s`).FindStringSubmatch(stdout)
	acked := regexp.MustCompile(`(\d+) tips observed`).FindStringSubmatch(stdout)
	if !strings.Contains(stdout, "tip unavailable=4") || sent == nil || acked == nil || atoi(t, sent[1]) != atoi(t, acked[1])+4 {
		t.Fatalf("want 4 lost answers, each retried once:\n%s", stdout)
	}
	if !strings.Contains(stdout, "2 of 2 earn exactly the sum of their shares") {
		t.Fatalf("stdout:\n%s", stdout)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
