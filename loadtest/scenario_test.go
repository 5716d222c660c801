package loadtest

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const launchScenario = `
mix: {wallet: 1}
items: {potion: 3, "*": 1}
archetypes:
  whale:
    share: 1
    session: 5
    mix: {purchase: 1}
    items: {starter: 1}
  casual:
    share: 3
    mix: {wallet: 2, catalog: 1}
arrival:
  - steady: {rate: 10, for: 2s}
  - ramp: {to: 40, for: 2s}
  - spike: {to: 100, for: 1s}
`

func TestScenarioArchetypesItemsAndArrivalParse(t *testing.T) {
	s, err := ParseScenario([]byte(launchScenario), DefaultScenario())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Archetypes) != 2 || s.Archetypes[0].Name != "casual" || s.Archetypes[1].Session != 5 || s.Archetypes[1].Items["starter"] != 1 {
		t.Fatalf("archetypes %+v", s.Archetypes)
	}
	if s.Items["potion"] != 3 || !s.Uses(ActionPurchase) || s.Uses(ActionReceipt) {
		t.Fatalf("items %v, uses purchase %v", s.Items, s.Uses(ActionPurchase))
	}
	sched, err := NewScheduler(0, s.Arrival)
	if err != nil {
		t.Fatal(err)
	}
	// 10/s for 2 s, a ramp 10→40 over 2 s (50), a 1 s spike at 100: 170.
	if sched.Total() != 170 || sched.Duration() != 5*time.Second {
		t.Fatalf("arrival: %d requests over %s, want 170 over 5s", sched.Total(), sched.Duration())
	}
	if r := sched.RateAt(4500 * time.Millisecond); r != 100 {
		t.Fatalf("rate during the spike %v, want 100", r)
	}
	if r := sched.RateAt(1 * time.Second); r != 10 {
		t.Fatalf("steady rate %v, want 10", r)
	}
}

func TestScenarioErrorsNameTheirPath(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"a misspelt action in a mix", "mix:\n  purchse: 10\n", "mix.purchse: unknown action"},
		{"a misspelt top-level section", "mixx:\n  purchase: 10\n", "mixx: unknown field"},
		{"a share above one", "purchase:\n  retry_share: 2\n", "purchase: retry_share and stale_price_share"},
		{"shares summing above one", "purchase:\n  retry_share: 0.6\n  stale_price_share: 0.6\n", "sum to at most 1"},
		{"an all-zero mix", "mix:\n  purchase: 0\n", "mix: every weight is zero"},
		{"a negative weight", "mix:\n  purchase: -1\n", "mix.purchase: weight must be a non-negative number"},
		{"a zero max quantity", "purchase:\n  max_quantity: 0\n", "purchase.max_quantity: must be in 1..1000"},
		{"a fractional max quantity", "purchase:\n  max_quantity: 1.5\n", "purchase.max_quantity: want a whole number"},
		{"a list for a mix", "mix: [1, 2]\n", "mix: want a mapping of name to weight, got a list"},
		{"a string weight", "mix:\n  wallet: lots\n", `mix.wallet: want a number, got the string "lots"`},
		{"an archetype's unknown action", "archetypes:\n  whale:\n    mix: {purchse: 1}\n", "archetypes.whale.mix.purchse: unknown action"},
		{"an archetype's unknown field", "archetypes:\n  whale:\n    sesion: 3\n", "archetypes.whale.sesion: unknown field"},
		{"a negative share", "archetypes:\n  whale:\n    share: -1\n", "archetypes.whale.share: must be a non-negative number"},
		{"a fractional session", "archetypes:\n  whale:\n    session: 2.5\n", "archetypes.whale.session: want a whole number"},
		{"a negative session", "archetypes:\n  whale:\n    session: -2\n", "archetypes.whale.session: want 0..1000000"},
		{"archetypes as a list", "archetypes: [whale]\n", "archetypes: want a mapping of name to archetype, got a list"},
		{"every share zero", "archetypes:\n  a: {share: 0}\n  b: {share: 0}\n", "archetypes: every share is zero"},
		{"a negative item weight", "items:\n  potion: -2\n", "items.potion: weight must be a non-negative number"},
		{"an archetype's zero items", "archetypes:\n  whale:\n    items: {potion: 0}\n", "archetypes.whale.items: every weight is zero"},
		{"an unknown arrival segment", "arrival:\n  - surge: {to: 5, for: 1s}\n", "arrival[0].surge: unknown segment"},
		{"an arrival segment without duration", "arrival:\n  - steady: {rate: 5}\n", "arrival[0].steady.for: missing"},
		{"a bad arrival duration", "arrival:\n  - steady: {rate: 5, for: 1s}\n  - ramp: {to: 5, for: soon}\n", "arrival[1].ramp.for: want a positive duration"},
		{"a ramp with rate instead of to", "arrival:\n  - ramp: {rate: 5, for: 1s}\n", "arrival[0].ramp.rate: unknown field (want to, for)"},
		{"a negative rate", "arrival:\n  - steady: {rate: -5, for: 1s}\n", "arrival[0].steady.rate: want a rate"},
		{"an arrival that sends nothing", "arrival:\n  - steady: {rate: 0, for: 1s}\n", "arrival: scheduler: the stages never send a request"},
		{"arrival as a mapping", "arrival:\n  steady: {rate: 1, for: 1s}\n", "arrival: want a list"},
		{"two segments in one entry", "arrival:\n  - {steady: {rate: 1, for: 1s}, ramp: {to: 2, for: 1s}}\n", "arrival[0]: want one of"},
		{"a scalar document", "just words\n", "scenario: want a mapping"},
	} {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(tc.yaml), DefaultScenario())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestScenarioItemsMustBeRepeatableCatalogOffers(t *testing.T) {
	f := newFakeCoinop()
	doc := f.doc
	now := time.Now()
	offers, skipped := PickOffers(doc.Catalog, now, now.Add(time.Minute))
	for _, tc := range []struct{ items, want string }{
		{"nothing", "items.nothing: is not in the catalog"},
		{"sword", "items.sword: cannot be bought repeatedly: item sword is durable"},
	} {
		_, _, err := weightedOffers("items", map[string]float64{tc.items: 1}, offers, skipped)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.items, err, tc.want)
		}
	}
}

func TestArchetypesSplitPlayersAndWeightWhatTheyBuy(t *testing.T) {
	f := newFakeCoinop()
	url := f.start(t)
	path := writeFile(t, "s.yaml", launchScenario)
	code, out, errOut := runCommand(t, f, url, "--scenario", path, "--players", "8", "--seed", "7", "--max-requests", "170")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	bought := f.boughtItems()
	// Only whales buy, and whales buy only the starter pack.
	if len(bought) != 1 || bought["starter"] == 0 {
		t.Fatalf("bought %v, want only starter", bought)
	}
	if !strings.Contains(out, "archetypes: casual 6 players, whale 2 players") {
		t.Fatalf("output does not report the split:\n%s", out)
	}
}

// TestReplayReproducesTheRequestSequence runs a scenario with a seed, then
// --replay of its report against a fresh server: every player sends the
// same requests, purchases of the same items at the same quantities and
// prices. A different seed sends different ones.
func TestReplayReproducesTheRequestSequence(t *testing.T) {
	scenario := writeFile(t, "s.yaml", `
mix: {wallet: 3, entitlements: 2, catalog: 1, purchase: 4}
items: {potion: 2, starter: 1, elixir: 1, "*": 0}
purchase: {retry_share: 0.2, stale_price_share: 0.1, max_quantity: 4}
archetypes:
  whale: {share: 1, session: 4, mix: {purchase: 3, wallet: 1}}
  casual: {share: 2}
`)
	report := filepath.Join(t.TempDir(), "first.json")
	first := newFakeCoinop()
	code, out, errOut := runCommand(t, first, first.start(t), "--scenario", scenario, "--rate", "200", "--duration", "600ms",
		"--players", "6", "--seed", "42", "--out", report)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	want := first.tracedRequests()
	if len(want) < 100 {
		t.Fatalf("only %d requests traced", len(want))
	}

	again := newFakeCoinop()
	code, out, errOut = runCommand(t, again, again.start(t), "--replay", report)
	if code != ExitOK {
		t.Fatalf("replay exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "seed 42") {
		t.Fatalf("replay did not use the report's seed:\n%s", out)
	}
	if got := again.tracedRequests(); !slices.Equal(got, want) {
		t.Fatalf("replay sent a different sequence:\n%s", diffLines(want, got))
	}

	other := newFakeCoinop()
	if code, out, errOut = runCommand(t, other, other.start(t), "--replay", report, "--seed", "43"); code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if slices.Equal(other.tracedRequests(), want) {
		t.Fatal("another seed sent the very same requests: the seed does not decide the sequence")
	}
}

func TestReplayRefusesWhatItCannotReplay(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"a report without configuration", `{"tool":"coinop loadtest"}`, "has no run configuration"},
		{"a file that is not a report", `not json`, "reading report"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "r.json", tc.content)
			_, err := parse(t, testEnv, "--replay", path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := parse(t, testEnv, "--replay", filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "--replay") {
		t.Fatalf("missing file: %v", err)
	}
}

func diffLines(want, got []string) string {
	var b strings.Builder
	w, g := map[string]int{}, map[string]int{}
	for _, l := range want {
		w[l]++
	}
	for _, l := range got {
		g[l]++
	}
	n := 0
	for l, c := range w {
		if g[l] != c && n < 20 {
			fmt.Fprintf(&b, "  %q: want %d, got %d\n", l, c, g[l])
			n++
		}
	}
	for l, c := range g {
		if w[l] == 0 && n < 20 {
			fmt.Fprintf(&b, "  %q: want 0, got %d\n", l, c)
			n++
		}
	}
	fmt.Fprintf(&b, "  (%d lines wanted, %d got)", len(want), len(got))
	return b.String()
}

func TestLaunchScenarioExampleParses(t *testing.T) {
	cfg, err := parse(t, testEnv, "--scenario", filepath.Join("testdata", "launch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Scenario
	if len(s.Archetypes) != 3 || s.Items["potion"] != 5 || len(cfg.Stages) == 0 {
		t.Fatalf("scenario %+v stages %v", s, cfg.Stages)
	}
	// 50×20 + (50+200)/2×40 + 600×10 + 200×30 = 18000 over 100 s.
	if sched, err := cfg.Scheduler(); err != nil || sched.Total() != 18000 || cfg.RunLength() != 100*time.Second {
		t.Fatalf("schedule %v, %v over %s", err, sched, cfg.RunLength())
	}
}
