package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Scenario is what virtual players do. It comes from defaults, then a
// --scenario YAML file, then flags.
//
//	mix:                 # relative action weights of players without an archetype
//	  catalog: 10
//	  wallet: 20
//	  entitlements: 20
//	  purchase: 40
//	  entitlement_check: 10
//	  receipt: 0
//	purchase:
//	  retry_share: 0.1        # purchases sent again with the same Idempotency-Key
//	  stale_price_share: 0.05 # purchases sent with a wrong price, expecting 409
//	  max_quantity: 3         # quantity is uniform in 1..max_quantity
//	items:                    # what purchases buy, weighted; ids from the live catalog
//	  potion: 5
//	  starter: 1
//	  "*": 1                  # every other repeatable item or bundle (0: none)
//	archetypes:               # kinds of player, each a share of --players
//	  whale:
//	    share: 5
//	    session: 30           # actions per session; each opens with a fresh catalog read
//	    mix: {purchase: 50, wallet: 30, catalog: 20}
//	    items: {starter: 10, "*": 1}
//	  casual:
//	    share: 80
//	    session: 10
//	    mix: {wallet: 50, entitlements: 30, purchase: 5, catalog: 15}
//	creators:                 # the creator program (the server's COINOP_CREATOR_PROGRAM=true)
//	  count: 3                # creators the run creates, lt-<runid>-c<n>, each with one code (0: none)
//	  code_share: 0.5         # share of players who support one of them with its code
//	  tip_max: 10             # a tip (mix action tip) is uniform in 1..tip_max units of a tippable currency
//	arrival:                  # the open model's rate over time (instead of --rate)
//	  - steady: {rate: 100, for: 30s}
//	  - ramp: {to: 400, for: 60s}
//	  - spike: {to: 1000, for: 5s}   # a sale opening: step up, hold, step back
type Scenario struct {
	Mix      map[string]float64 `json:"mix"`
	Purchase PurchaseMix        `json:"purchase"`
	// Items weights what purchases buy by catalog id; "*" is every offer
	// not named. Empty means every offer with weight 1.
	Items      map[string]float64 `json:"items,omitempty"`
	Archetypes []Archetype        `json:"archetypes,omitempty"` // sorted by name
	// Arrival is the arrival curve as scheduler stages, from the file's
	// steady, ramp and spike segments; Segments keeps them as written.
	Arrival  []Stage    `json:"arrival,omitempty"`
	Segments []Segment  `json:"segments,omitempty"`
	Creators CreatorMix `json:"creators"`
}

// CreatorMix shapes the creator program's part of a run: creators made at
// setup, the players who set their codes (so that their purchases and
// spends credit them), and the size of tips.
type CreatorMix struct {
	Count     int     `json:"count"`
	CodeShare float64 `json:"code_share"`
	TipMax    int64   `json:"tip_max"`
}

// Creator mix defaults and bounds.
const (
	DefaultCreatorCodeShare = 0.5
	DefaultTipMax           = 10
	maxCreators             = 1000
	maxTip                  = 1_000_000
)

// Archetype is one kind of player.
type Archetype struct {
	Name    string             `json:"name"`
	Share   float64            `json:"share"`             // relative share of players
	Session int                `json:"session,omitempty"` // actions per session (0: one endless session)
	Mix     map[string]float64 `json:"mix,omitempty"`     // empty: the scenario's mix
	Items   map[string]float64 `json:"items,omitempty"`   // empty: the scenario's items
}

// Segment is one piece of an arrival curve as written in a scenario.
type Segment struct {
	Kind string        `json:"kind"` // steady | ramp | spike
	Rate float64       `json:"rate"` // steady: the rate; ramp and spike: the target
	For  time.Duration `json:"for"`
}

// PurchaseMix shapes purchases.
type PurchaseMix struct {
	RetryShare      float64 `json:"retry_share"`
	StalePriceShare float64 `json:"stale_price_share"`
	MaxQuantity     int64   `json:"max_quantity"`
}

// DefaultScenario is the mix used when nothing else is given: mostly reads,
// with purchases heavy enough to stress the write path.
func DefaultScenario() Scenario {
	return Scenario{
		Mix: map[string]float64{
			ActionCatalog: 10, ActionWallet: 20, ActionEntitlements: 20,
			ActionPurchase: 40, ActionEntitlementCheck: 10, ActionReceipt: 0,
		},
		Purchase: PurchaseMix{RetryShare: 0.1, StalePriceShare: 0.05, MaxQuantity: 3},
		Creators: CreatorMix{CodeShare: DefaultCreatorCodeShare, TipMax: DefaultTipMax},
	}
}

// Uses reports whether any player may take action a.
func (s Scenario) Uses(a string) bool {
	if len(s.Archetypes) == 0 {
		return s.Mix[a] > 0
	}
	for _, ar := range s.Archetypes {
		if ar.mix(s)[a] > 0 {
			return true
		}
	}
	return false
}

func (ar Archetype) mix(s Scenario) map[string]float64 {
	if len(ar.Mix) > 0 {
		return ar.Mix
	}
	return s.Mix
}

func (ar Archetype) items(s Scenario) map[string]float64 {
	if len(ar.Items) > 0 {
		return ar.Items
	}
	return s.Items
}

// Validate returns an error, naming where, for unknown actions, negative
// weights, an all-zero mix or shares outside [0, 1].
func (s Scenario) Validate() error {
	if err := validateMix("mix", s.Mix, len(s.Archetypes) == 0); err != nil {
		return err
	}
	p := s.Purchase
	if p.RetryShare < 0 || p.RetryShare > 1 || p.StalePriceShare < 0 || p.StalePriceShare > 1 || p.RetryShare+p.StalePriceShare > 1 {
		return errors.New("purchase: retry_share and stale_price_share must be in [0, 1] and sum to at most 1")
	}
	if p.MaxQuantity < 1 || p.MaxQuantity > 1000 {
		return errors.New("purchase.max_quantity: must be in 1..1000")
	}
	if err := validateWeights("items", s.Items); err != nil {
		return err
	}
	cm := s.Creators
	switch {
	case cm.Count < 0 || cm.Count > maxCreators:
		return fmt.Errorf("creators.count: must be in 0..%d", maxCreators)
	case !(cm.CodeShare >= 0 && cm.CodeShare <= 1):
		return errors.New("creators.code_share: must be in [0, 1]")
	case cm.Count > 0 && (cm.TipMax < 1 || cm.TipMax > maxTip):
		return fmt.Errorf("creators.tip_max: must be in 1..%d", maxTip)
	}
	total := 0.0
	for _, ar := range s.Archetypes {
		at := "archetypes." + ar.Name
		if ar.Share < 0 || math.IsNaN(ar.Share) || math.IsInf(ar.Share, 0) {
			return fmt.Errorf("%s.share: must be a non-negative number", at)
		}
		total += ar.Share
		if ar.Session < 0 {
			return fmt.Errorf("%s.session: must be a non-negative number of actions", at)
		}
		if len(ar.Mix) > 0 {
			if err := validateMix(at+".mix", ar.Mix, true); err != nil {
				return err
			}
		} else if err := validateMix("mix", s.Mix, true); err != nil {
			return fmt.Errorf("%s has no mix of its own and %w", at, err)
		}
		if err := validateWeights(at+".items", ar.Items); err != nil {
			return err
		}
	}
	if len(s.Archetypes) > 0 && total == 0 {
		return errors.New("archetypes: every share is zero")
	}
	return nil
}

func validateMix(at string, mix map[string]float64, needSome bool) error {
	total := 0.0
	for _, a := range sortedKeys(mix) {
		w := mix[a]
		if !slices.Contains(Actions, a) {
			return fmt.Errorf("%s.%s: unknown action (want %s)", at, a, strings.Join(Actions, ", "))
		}
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("%s.%s: weight must be a non-negative number", at, a)
		}
		total += w
	}
	if needSome && total == 0 {
		return fmt.Errorf("%s: every weight is zero", at)
	}
	return nil
}

func validateWeights(at string, m map[string]float64) error {
	total := 0.0
	for _, id := range sortedKeys(m) {
		w := m[id]
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("%s.%s: weight must be a non-negative number", at, id)
		}
		total += w
	}
	if len(m) > 0 && total == 0 {
		return fmt.Errorf("%s: every weight is zero", at)
	}
	return nil
}

// ParseScenario reads a scenario YAML file over base: sections present in
// the file replace base's (a mix given in the file is the whole mix).
// Unknown fields and wrong types are errors that name their path
// ("archetypes.whale.mix.purchse: unknown action"), so a typo cannot
// silently fall back to defaults.
func ParseScenario(data []byte, base Scenario) (Scenario, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return base, err
	}
	s := base
	if doc == nil {
		return s, s.Validate()
	}
	top, err := object("", doc, "mix", "purchase", "items", "archetypes", "arrival", "creators")
	if err != nil {
		return base, err
	}
	if v, ok := top["mix"]; ok {
		if s.Mix, err = weights("mix", v); err != nil {
			return base, err
		}
	}
	if v, ok := top["purchase"]; ok {
		p, err := object("purchase", v, "retry_share", "stale_price_share", "max_quantity")
		if err != nil {
			return base, err
		}
		for k, dst := range map[string]*float64{"retry_share": &s.Purchase.RetryShare, "stale_price_share": &s.Purchase.StalePriceShare} {
			if v, ok := p[k]; ok {
				if *dst, err = number("purchase."+k, v); err != nil {
					return base, err
				}
			}
		}
		if v, ok := p["max_quantity"]; ok {
			n, err := integer("purchase.max_quantity", v)
			if err != nil {
				return base, err
			}
			s.Purchase.MaxQuantity = n
		}
	}
	if v, ok := top["creators"]; ok {
		if s.Creators, err = creatorMix(v, s.Creators); err != nil {
			return base, err
		}
	}
	if v, ok := top["items"]; ok {
		if s.Items, err = weights("items", v); err != nil {
			return base, err
		}
	}
	if v, ok := top["archetypes"]; ok {
		if s.Archetypes, err = archetypes(v); err != nil {
			return base, err
		}
	}
	if v, ok := top["arrival"]; ok {
		if s.Segments, err = segments(v); err != nil {
			return base, err
		}
		s.Arrival = StagesOf(s.Segments)
		if _, err := NewScheduler(0, s.Arrival); err != nil {
			return base, fmt.Errorf("arrival: %w", err)
		}
	}
	return s, s.Validate()
}

func creatorMix(v any, cm CreatorMix) (CreatorMix, error) {
	f, err := object("creators", v, "count", "code_share", "tip_max")
	if err != nil {
		return cm, err
	}
	if v, ok := f["count"]; ok {
		n, err := integer("creators.count", v)
		if err != nil {
			return cm, err
		}
		if n < 0 || n > maxCreators {
			return cm, fmt.Errorf("creators.count: want 0..%d creators, got %d", maxCreators, n)
		}
		cm.Count = int(n)
	}
	if v, ok := f["code_share"]; ok {
		if cm.CodeShare, err = number("creators.code_share", v); err != nil {
			return cm, err
		}
	}
	if v, ok := f["tip_max"]; ok {
		if cm.TipMax, err = integer("creators.tip_max", v); err != nil {
			return cm, err
		}
	}
	return cm, nil
}

func archetypes(v any) ([]Archetype, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("archetypes: want a mapping of name to archetype, got %s", kindOf(v))
	}
	if len(m) == 0 {
		return nil, errors.New("archetypes: empty")
	}
	var out []Archetype
	for _, name := range sortedKeys(m) {
		at := "archetypes." + name
		f, err := object(at, m[name], "share", "session", "mix", "items")
		if err != nil {
			return nil, err
		}
		ar := Archetype{Name: name, Share: 1}
		if v, ok := f["share"]; ok {
			if ar.Share, err = number(at+".share", v); err != nil {
				return nil, err
			}
		}
		if v, ok := f["session"]; ok {
			n, err := integer(at+".session", v)
			if err != nil {
				return nil, err
			}
			if n < 0 || n > 1_000_000 {
				return nil, fmt.Errorf("%s.session: want 0..1000000 actions, got %d", at, n)
			}
			ar.Session = int(n)
		}
		if v, ok := f["mix"]; ok {
			if ar.Mix, err = weights(at+".mix", v); err != nil {
				return nil, err
			}
		}
		if v, ok := f["items"]; ok {
			if ar.Items, err = weights(at+".items", v); err != nil {
				return nil, err
			}
		}
		out = append(out, ar)
	}
	return out, nil
}

func segments(v any) ([]Segment, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("arrival: want a list of steady, ramp or spike segments, got %s", kindOf(v))
	}
	var out []Segment
	for i, item := range list {
		at := fmt.Sprintf("arrival[%d]", i)
		m, ok := item.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, fmt.Errorf("%s: want one of steady: {rate, for}, ramp: {to, for} or spike: {to, for}", at)
		}
		var kind string
		for k := range m {
			kind = k
		}
		rateKey := "to"
		switch kind {
		case "steady":
			rateKey = "rate"
		case "ramp", "spike":
		default:
			return nil, fmt.Errorf("%s.%s: unknown segment (want steady, ramp or spike)", at, kind)
		}
		at += "." + kind
		f, err := object(at, m[kind], rateKey, "for")
		if err != nil {
			return nil, err
		}
		seg := Segment{Kind: kind}
		rv, ok := f[rateKey]
		if !ok {
			return nil, fmt.Errorf("%s.%s: missing", at, rateKey)
		}
		if seg.Rate, err = number(at+"."+rateKey, rv); err != nil {
			return nil, err
		}
		if seg.Rate < 0 || seg.Rate > 1e6 {
			return nil, fmt.Errorf("%s.%s: want a rate in 0..1000000 requests per second", at, rateKey)
		}
		dv, ok := f["for"]
		if !ok {
			return nil, fmt.Errorf("%s.for: missing (a duration such as 30s)", at)
		}
		ds, ok := dv.(string)
		d, err := time.ParseDuration(ds)
		if !ok || err != nil || d <= 0 {
			return nil, fmt.Errorf("%s.for: want a positive duration such as 30s, got %v", at, dv)
		}
		seg.For = d
		out = append(out, seg)
	}
	return out, nil
}

// StagesOf turns arrival segments into scheduler stages, which start from
// rate 0: steady steps to its rate and holds it, ramp moves linearly to its
// target, spike steps to its target, holds it and steps back.
func StagesOf(segs []Segment) []Stage {
	var out []Stage
	prev := 0.0
	for _, s := range segs {
		switch s.Kind {
		case "steady":
			out = append(out, Stage{Target: s.Rate}, Stage{Duration: s.For, Target: s.Rate})
			prev = s.Rate
		case "ramp":
			out = append(out, Stage{Duration: s.For, Target: s.Rate})
			prev = s.Rate
		case "spike":
			out = append(out, Stage{Target: s.Rate}, Stage{Duration: s.For, Target: s.Rate}, Stage{Target: prev})
		}
	}
	return out
}

// object checks that v is a mapping with only the allowed keys.
func object(at string, v any, allowed ...string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a mapping, got %s", orTop(at), kindOf(v))
	}
	for _, k := range sortedKeys(m) {
		if !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("%s: unknown field (want %s)", join(at, k), strings.Join(allowed, ", "))
		}
	}
	return m, nil
}

func weights(at string, v any) (map[string]float64, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a mapping of name to weight, got %s", at, kindOf(v))
	}
	out := map[string]float64{}
	for _, k := range sortedKeys(m) {
		w, err := number(join(at, k), m[k])
		if err != nil {
			return nil, err
		}
		out[k] = w
	}
	return out, nil
}

func number(at string, v any) (float64, error) {
	f, ok := v.(float64)
	if !ok {
		return 0, fmt.Errorf("%s: want a number, got %s", at, kindOf(v))
	}
	return f, nil
}

func integer(at string, v any) (int64, error) {
	f, err := number(at, v)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s: want a whole number, got %v", at, f)
	}
	return int64(f), nil
}

func kindOf(v any) string {
	switch v := v.(type) {
	case nil:
		return "nothing"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case float64:
		return fmt.Sprintf("the number %v", v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func join(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}

func orTop(at string) string {
	if at == "" {
		return "scenario"
	}
	return at
}

// weightedOffers returns the offers weighted by items (id → weight, "*"
// for the rest; empty: all 1), with cumulative weights for picking. It
// returns an error naming at.<id> for an id that is not a repeatable offer
// of the catalog.
func weightedOffers(at string, items map[string]float64, offers []Offer, skipped []string) (idx []int, cum []float64, err error) {
	known := map[string]bool{}
	for _, o := range offers {
		known[o.ItemID] = true
	}
	for _, id := range sortedKeys(items) {
		if id == "*" || known[id] {
			continue
		}
		why := "is not in the catalog"
		for _, s := range skipped {
			if strings.HasPrefix(s, "item "+id+" ") || strings.HasPrefix(s, "bundle "+id+" ") {
				why = "cannot be bought repeatedly: " + s
			}
		}
		return nil, nil, fmt.Errorf("%s.%s: %s", at, id, why)
	}
	rest := 1.0
	if len(items) > 0 {
		rest = items["*"]
	}
	total := 0.0
	for i, o := range offers {
		w, ok := items[o.ItemID]
		if !ok {
			w = rest
		}
		if w <= 0 {
			continue
		}
		total += w
		idx = append(idx, i)
		cum = append(cum, total)
	}
	return idx, cum, nil
}

// pickWeighted returns the index chosen by x in [0, 1) among cumulative
// weights cum.
func pickWeighted(cum []float64, x float64) int {
	target := x * cum[len(cum)-1]
	return min(sort.Search(len(cum), func(i int) bool { return cum[i] > target }), len(cum)-1)
}
