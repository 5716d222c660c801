package loadtest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// RunConfig is everything that decides a run's request sequence, written
// into every report so that `--replay report.json` can run it again:
// the same seed, arrival schedule, players, scenario and shares send the
// same requests (player by player, action by action, item by item).
// Secrets, the target and the run id are not part of it.
//
// Two things depend on timing rather than on the seed, and so may differ in
// a replay: which owned item a server-to-server ownership check asks about
// (it picks among items the player was seen to receive so far), and
// purchases the tool turns into wallet reads because a max_per_player limit
// was reached by purchases still in flight.
type RunConfig struct {
	Seed         uint64           `json:"seed"`
	Model        string           `json:"model"`
	Rate         float64          `json:"rate,omitempty"`
	Stages       []Stage          `json:"stages,omitempty"`
	VUs          int              `json:"vus,omitempty"`
	Workers      int              `json:"workers,omitempty"` // as given; 0 sized from the peak rate
	Players      int              `json:"players"`
	DurationMS   int64            `json:"duration_ms"`
	MaxRequests  int64            `json:"max_requests"`
	TimeoutMS    int64            `json:"timeout_ms"`
	Fund         map[string]int64 `json:"fund,omitempty"`
	Scenario     Scenario         `json:"scenario"`
	ReceiptStore string           `json:"receipt_store,omitempty"`
	SLOs         []string         `json:"slos,omitempty"`
	Split        string           `json:"split,omitempty"` // "k/n" when this process ran one part of a run
	// Chaos holds the store chaos settings (the fake store's directory is
	// this machine's, so a replay names it again with --fake-store-dir).
	Chaos *ChaosOptions `json:"store_chaos,omitempty"`
	// CreatorProgram holds the server's creator settings verification was
	// told, for runs with creators.
	CreatorProgram *CreatorProgram `json:"creator_program,omitempty"`
	// Seen at setup: the live catalog's version and what the run could buy.
	CatalogVersion int64    `json:"catalog_version"`
	Offers         []Offer  `json:"offers,omitempty"`
	Archetypes     []string `json:"archetypes,omitempty"` // "whale: 2 players"
}

// NewRunConfig records cfg (and what setup found) for the report.
func NewRunConfig(cfg Config, fx *Fixture) RunConfig {
	rc := RunConfig{
		Seed: cfg.Seed, Model: "open", Rate: cfg.Rate, Stages: cfg.Stages, VUs: cfg.VUs, Workers: cfg.Workers,
		Players: cfg.Players, DurationMS: cfg.Duration.Milliseconds(), MaxRequests: cfg.MaxRequests,
		TimeoutMS: cfg.Timeout.Milliseconds(), Fund: cfg.Fund, Scenario: cfg.Scenario,
		ReceiptStore: cfg.ReceiptStore, Split: cfg.Split.String(),
	}
	if !cfg.Open() {
		rc.Model = "closed"
	}
	if cfg.Chaos.Enabled() {
		c := cfg.Chaos
		rc.Chaos = &c
	}
	if cfg.Scenario.Creators.Count > 0 {
		p := cfg.Program
		rc.CreatorProgram = &p
	}
	for _, s := range cfg.SLOs {
		rc.SLOs = append(rc.SLOs, s.Text)
	}
	if fx != nil {
		rc.CatalogVersion = fx.CatalogVersion
		rc.Offers = fx.Offers
		for _, k := range fx.Kinds {
			rc.Archetypes = append(rc.Archetypes, fmt.Sprintf("%s: %d players", k.Archetype.Name, k.Players))
		}
	}
	return rc
}

// loadReplay reads the run configuration from a report written by --out.
func loadReplay(path string) (*RunConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := ReadReport(f)
	if err != nil {
		return nil, err
	}
	if r.Config == nil {
		return nil, errors.New("the report has no run configuration (written by an older coinop loadtest)")
	}
	if r.Config.Seed == 0 {
		return nil, errors.New("the report's run configuration has no seed")
	}
	return r.Config, nil
}

// replayFlags returns, for each setting of rc, the flag and value that
// reproduce it, so ParseArgs can apply those the command line did not set.
func (rc *RunConfig) replayFlags() map[string]string {
	out := map[string]string{
		"seed":         strconv.FormatUint(rc.Seed, 10),
		"players":      strconv.Itoa(rc.Players),
		"max-requests": strconv.FormatInt(rc.MaxRequests, 10),
		"workers":      strconv.Itoa(rc.Workers),
	}
	if rc.TimeoutMS > 0 {
		out["timeout"] = (time.Duration(rc.TimeoutMS) * time.Millisecond).String()
	}
	if rc.DurationMS > 0 {
		out["duration"] = (time.Duration(rc.DurationMS) * time.Millisecond).String()
	}
	switch {
	case rc.Model == "closed":
		out["vus"] = strconv.Itoa(rc.VUs)
	case len(rc.Stages) > 0:
		out["stages"] = formatStages(rc.Stages)
	default:
		out["rate"] = strconv.FormatFloat(rc.Rate, 'g', -1, 64)
	}
	var fund []string
	for _, cur := range sortedKeys(rc.Fund) {
		fund = append(fund, fmt.Sprintf("%s=%d", cur, rc.Fund[cur]))
	}
	out["fund"] = strings.Join(fund, ",")
	if len(fund) == 0 {
		out["fund"] = "0"
	}
	if rc.ReceiptStore != "" {
		out["receipt-store"] = rc.ReceiptStore
	}
	if rc.Split != "" {
		out["split"] = rc.Split
	}
	if p := rc.CreatorProgram; p != nil {
		out["creator-share"], out["creator-tip-fee"] = formatShare(p.SharePPM), formatShare(p.TipFeePPM)
		out["creator-currencies"] = strings.Join(p.Currencies, ",")
	}
	if c := rc.Chaos; c != nil {
		f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
		out["refund-share"], out["duplicate-share"], out["abandon-share"], out["early-refund-share"] =
			f(c.RefundShare), f(c.DuplicateShare), f(c.AbandonShare), f(c.EarlyShare)
		out["refund-waves"] = strconv.Itoa(c.Waves)
		out["refund-wait"] = c.Wait.String()
		if c.StoreAPIAddr != "" {
			out["store-api-addr"] = c.StoreAPIAddr
			out["store-latency"] = c.StoreLatency.String()
			out["store-errors"], out["store-timeouts"] = f(c.StoreErrors), f(c.StoreTimeouts)
		}
	}
	return out
}

// formatStages writes stages in the --stages syntax, exactly.
func formatStages(st []Stage) string {
	parts := make([]string, len(st))
	for i, s := range st {
		parts[i] = s.Duration.String() + ":" + strconv.FormatFloat(s.Target, 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}
