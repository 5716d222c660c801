package loadtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Player is one virtual player and its bearer token.
type Player struct {
	ID    string
	Token string

	mu    sync.Mutex
	etag  string           // last catalog ETag this player saw
	owned map[string]int64 // items this player was seen to receive, for read-your-writes checks
	// held counts items held or being bought, against max_per_player:
	// purchases in flight count until the server refuses them.
	held map[string]int64

	kind     int    // index into Fixture.Kinds: the player's archetype
	creator  string // the run's creator whose code the player set, if any
	arrivals int64  // open model: actions dispatched so far (dispatcher only)
}

// reserve books room under o's per-player limits for qty units, and
// reports whether there was room.
func (p *Player) reserve(o Offer, qty int64) bool {
	if len(o.Limits) == 0 {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, max := range o.Limits {
		if p.held[id]+o.Grants[id]*qty > max {
			return false
		}
	}
	if p.held == nil {
		p.held = map[string]int64{}
	}
	for id := range o.Limits {
		p.held[id] += o.Grants[id] * qty
	}
	return true
}

// release returns what reserve booked, after the server refused the
// purchase.
func (p *Player) release(o Offer, qty int64) {
	if len(o.Limits) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range o.Limits {
		p.held[id] -= o.Grants[id] * qty
	}
}

func (p *Player) catalogETag() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.etag
}

func (p *Player) setCatalogETag(etag string) {
	p.mu.Lock()
	p.etag = etag
	p.mu.Unlock()
}

func (p *Player) addOwned(items map[string]int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.owned == nil {
		p.owned = map[string]int64{}
	}
	for id, q := range items {
		p.owned[id] += q
	}
}

// takeOwned takes one unit of an item the player is known to hold off the
// record (chosen by pick among them in a stable order), for a consumption.
func (p *Player) takeOwned(pick func(n int) int) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := slices.Sorted(maps.Keys(p.owned))
	if len(ids) == 0 {
		return "", false
	}
	id := ids[pick(len(ids))]
	if p.owned[id]--; p.owned[id] <= 0 {
		delete(p.owned, id)
	}
	return id, true
}

// ownedItem returns one item the player is known to hold (chosen by pick
// among them in a stable order) and how many at least.
func (p *Player) ownedItem(pick func(n int) int) (string, int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.owned) == 0 {
		return "", 0, false
	}
	ids := slices.Sorted(maps.Keys(p.owned))
	id := ids[pick(len(ids))]
	return id, p.owned[id], true
}

// NewRunID returns 8 random hex digits. Run ids name players and
// idempotency keys, which persist on the server, so they come from the
// system's randomness even when --seed fixes the request mix.
func NewRunID() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// MintToken signs a player token as the server expects: HS256 with sub and
// exp, plus iss and aud when given.
func MintToken(secret []byte, playerID string, now time.Time, ttl time.Duration, issuer, audience string) (string, error) {
	claims := jwt.RegisteredClaims{
		Subject:   playerID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		Issuer:    issuer,
	}
	if audience != "" {
		claims.Audience = jwt.ClaimStrings{audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// ReadTokens reads players from a tokens file: one "player_id token" per
// line (space, tab or comma separated), blank lines and #-comments ignored.
// It returns an error naming the first bad line or a repeated player.
func ReadTokens(r io.Reader) ([]*Player, error) {
	var out []*Player
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
		if len(f) != 2 {
			return nil, fmt.Errorf("tokens line %d: want \"player_id token\"", n)
		}
		if seen[f[0]] {
			return nil, fmt.Errorf("tokens line %d: player %q listed twice", n, f[0])
		}
		seen[f[0]] = true
		out = append(out, &Player{ID: f[0], Token: f[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("tokens file lists no players")
	}
	return out, nil
}

// Offer is one thing virtual players buy: an item or bundle at one of its
// prices.
type Offer struct {
	ItemID string `json:"item_id"`
	Bundle bool   `json:"bundle,omitempty"`
	Price  Price  `json:"price"`
	// Grants is what one unit puts in the player's inventory (the item
	// itself, or a bundle's items).
	Grants map[string]int64 `json:"grants,omitempty"`
	// Limits holds max_per_player of each granted item that has one: the
	// most a player may hold, which the tool stays under so that a
	// limit_exceeded is a server error, not the tool's doing.
	Limits map[string]int64 `json:"limits,omitempty"`
}

// PickOffers returns the offers a load test can buy over and over:
// consumables, and bundles made only of consumables and currencies, on sale
// during the whole window [from, until). Durable items are left out (a
// second purchase is refused already_owned); consumables with a per-player
// limit are kept with their limit. skipped explains each catalog entry left
// out.
func PickOffers(c Catalog, from, until time.Time) (offers []Offer, skipped []string) {
	items := map[string]Item{}
	for _, it := range c.Items {
		items[it.ID] = it
	}
	inWindow := func(af, au *time.Time) bool {
		return (af == nil || !af.After(from)) && (au == nil || au.After(until))
	}
	repeatable := func(it Item) string {
		switch {
		case it.Kind != "consumable":
			return "is " + it.Kind
		case !inWindow(it.AvailableFrom, it.AvailableUntil):
			return "is not on sale for the whole run"
		}
		return ""
	}
	limits := func(grants map[string]int64) map[string]int64 {
		var l map[string]int64
		for id := range grants {
			if m := items[id].MaxPerPlayer; m != nil {
				if l == nil {
					l = map[string]int64{}
				}
				l[id] = *m
			}
		}
		return l
	}
	for _, it := range c.Items {
		if why := repeatable(it); why != "" {
			skipped = append(skipped, fmt.Sprintf("item %s %s", it.ID, why))
			continue
		}
		for _, p := range it.Prices {
			g := map[string]int64{it.ID: 1}
			offers = append(offers, Offer{ItemID: it.ID, Price: p, Grants: g, Limits: limits(g)})
		}
	}
bundles:
	for _, b := range c.Bundles {
		if !inWindow(b.AvailableFrom, b.AvailableUntil) {
			skipped = append(skipped, fmt.Sprintf("bundle %s is not on sale for the whole run", b.ID))
			continue
		}
		for _, id := range slices.Sorted(maps.Keys(b.Contents.Items)) {
			it, ok := items[id]
			if !ok {
				skipped = append(skipped, fmt.Sprintf("bundle %s contains unknown item %s", b.ID, id))
				continue bundles
			}
			if why := repeatable(it); why != "" {
				skipped = append(skipped, fmt.Sprintf("bundle %s contains item %s, which %s", b.ID, id, why))
				continue bundles
			}
		}
		for _, p := range b.Prices {
			g := maps.Clone(b.Contents.Items)
			offers = append(offers, Offer{ItemID: b.ID, Bundle: true, Price: p, Grants: g, Limits: limits(g)})
		}
	}
	return offers, skipped
}

// Fixture is what setup prepared for the load phase.
type Fixture struct {
	RunID          string
	Players        []*Player
	Offers         []Offer
	Currencies     []string
	CatalogVersion int64
	Funding        map[string]int64 // what each player was granted
	// Unavailable maps scenario names that cannot run against this server
	// to the reason, reported as a note.
	Unavailable map[string]string
	Receipts    *ReceiptPool
	// Kinds holds one entry per archetype (one for a scenario without
	// archetypes); every player belongs to one.
	Kinds []PlayerKind
	// Store, with --fake-store-dir, mints and tracks fake App Store
	// transactions (and the store chaos); nil otherwise.
	Store *storeState
	// Baseline is each existing player's newest ledger transaction id before
	// the run, so verification does not ask the run to explain older
	// history. Players minted for the run start empty and have none.
	Baseline map[string]int64
	Notes    []string
	// The creator program (scenario creators): the run's creators, the
	// currencies the catalog lets players tip in, each creator-made item's
	// share (which caps a code's share of its sales), and the server's
	// settings verification checks earnings with.
	Creators      []*RunCreator
	TipCurrencies []string
	ItemShares    map[string]int64
	// BundleShares: bundle id → currency → its active creators' shares.
	BundleShares map[string]map[string]int64
	Program      CreatorProgram
}

// Setup creates and funds the players and reads the catalog. It returns an
// error when the server cannot be reached, refuses the tool's credentials or
// offers nothing a purchase scenario could buy. Grants are recorded in obs
// so verification can find them in the ledger.
func Setup(ctx context.Context, cfg Config, c *Client, obs *Observed, now time.Time) (_ *Fixture, err error) {
	fx := &Fixture{RunID: cfg.RunID, Unavailable: map[string]string{}, Receipts: NewReceiptPool(cfg.Receipts), Baseline: map[string]int64{},
		Program: cfg.Program}
	if len(cfg.TokenPlayers) > 0 {
		fx.Players = cfg.TokenPlayers
		for _, p := range fx.Players {
			// Existing players may hold items already: start the
			// per-player limits from what they hold.
			e, err := c.FetchEntitlements(ctx, p.Token)
			if err != nil {
				return nil, fmt.Errorf("player %s: %w", p.ID, err)
			}
			p.held = map[string]int64{}
			for _, ent := range e.Entitlements {
				p.held[ent.ItemID] += ent.Quantity
			}
			if cfg.Verify {
				id, err := c.LatestLedgerID(ctx, p.ID)
				if err != nil {
					return nil, err
				}
				fx.Baseline[p.ID] = id
			}
		}
	} else {
		// Tokens outlive the run by an hour so verification and a slow
		// drain never hit expiry.
		ttl := cfg.planned() + time.Hour
		for n := range cfg.Players {
			id := fmt.Sprintf("lt-%s-%d", cfg.RunID, n)
			tok, err := MintToken([]byte(cfg.JWTSecret), id, now, ttl, cfg.JWTIssuer, cfg.JWTAudience)
			if err != nil {
				return nil, fmt.Errorf("minting token for %s: %w", id, err)
			}
			fx.Players = append(fx.Players, &Player{ID: id, Token: tok})
		}
	}

	doc, err := c.FetchCatalog(ctx, fx.Players[0].Token)
	if err != nil {
		return nil, err
	}
	fx.CatalogVersion = doc.Version
	for _, cur := range doc.Catalog.Currencies {
		fx.Currencies = append(fx.Currencies, cur.ID)
	}
	offers, skipped := PickOffers(doc.Catalog, now, now.Add(cfg.planned()+time.Minute))
	fx.Offers = offers
	if err := assignKinds(cfg.Scenario, fx, skipped); err != nil {
		return nil, fmt.Errorf("scenario: %w (catalog v%d)", err, doc.Version)
	}
	if cfg.Scenario.Uses(ActionPurchase) && len(offers) == 0 {
		return nil, fmt.Errorf("catalog v%d has nothing a load test can buy repeatedly (%s); give purchase weight 0 to run without purchases",
			doc.Version, strings.Join(skipped, "; "))
	}

	fx.Funding = fundingFor(cfg.Fund, fx.Currencies)
	if len(fx.Funding) > 0 {
		if err := fund(ctx, c, fx, obs); err != nil {
			return nil, err
		}
	}

	if cfg.Scenario.Creators.Count > 0 {
		if err := setupCreators(ctx, c, cfg, fx, doc.Catalog); err != nil {
			return nil, err
		}
		if cfg.Scenario.Uses(ActionTip) && len(fx.TipCurrencies) == 0 {
			fx.Unavailable[ActionTip] = fmt.Sprintf("catalog v%d marks no currency tippable", doc.Version)
		}
	}
	if cfg.Scenario.Uses(ActionEntitlementCheck) {
		if why := probeOwnershipRoute(ctx, c, cfg, fx); why != "" {
			fx.Unavailable[ActionEntitlementCheck] = why
		}
	}
	for _, a := range []string{ActionAward, ActionSpend, ActionConsume} {
		if cfg.Scenario.Uses(a) && cfg.ServerToken == "" {
			fx.Unavailable[a] = "no server key (--server-key, COINOP_LOADTEST_SERVER_KEY or COINOP_SERVER_TOKEN)"
		}
	}
	if cfg.FakeStoreDir != "" {
		signer, err := LoadAppleSigner(cfg.FakeStoreDir, cfg.AppleBundleID, cfg.AppleEnvironment)
		if err != nil {
			return nil, fmt.Errorf("--fake-store-dir: %w", err)
		}
		var products []string
		for _, sp := range doc.Catalog.StoreProducts {
			if sp.Store == "apple" {
				products = append(products, sp.ProductID)
			}
		}
		if len(products) == 0 {
			return nil, fmt.Errorf("catalog v%d sells nothing through the App Store (store_products with store apple): the fake store has nothing to mint", doc.Version)
		}
		fx.Store = newStoreState(signer, products, cfg.Chaos)
		if cfg.Chaos.StoreAPIAddr != "" {
			if fx.Store.api, err = startStoreAPI(cfg.Chaos.StoreAPIAddr, signer, cfg.Seed, cfg.Chaos); err != nil {
				return nil, err
			}
			fx.Notes = append(fx.Notes, "fake App Store Server API on "+fx.Store.api.URL()+" (the server's COINOP_APPLE_API_URL)")
			defer func() {
				if err != nil { // Command closes it after a successful setup
					fx.Store.api.close()
				}
			}()
		}
	}
	if cfg.Scenario.Uses(ActionReceipt) {
		if fx.Receipts.Len() == 0 && fx.Store == nil {
			fx.Unavailable[ActionReceipt] = "no pre-minted transactions (--receipts FILE) and no fake store to mint them (--fake-store-dir)"
		} else if why := probeReceiptRoute(ctx, c, cfg, fx); why != "" {
			fx.Unavailable[ActionReceipt] = why
		}
	}
	for _, a := range slices.Sorted(maps.Keys(fx.Unavailable)) {
		fx.Notes = append(fx.Notes, fmt.Sprintf("scenario %s skipped: %s", a, fx.Unavailable[a]))
	}
	return fx, nil
}

// PlayerKind is one archetype as the run uses it: what its players buy,
// weighted, and how many players it has.
type PlayerKind struct {
	Archetype Archetype
	Players   int
	offerIdx  []int     // into Fixture.Offers
	offerCum  []float64 // cumulative weights of offerIdx
}

// assignKinds weights each archetype's offers from the catalog and splits
// the players between archetypes by share: player n of N takes the
// archetype whose cumulative share holds (n+½)/N, so the split is exact
// and the same on every run.
func assignKinds(s Scenario, fx *Fixture, skipped []string) error {
	arches := s.Archetypes
	if len(arches) == 0 {
		arches = []Archetype{{Name: "player", Share: 1}}
	}
	total := 0.0
	for _, ar := range arches {
		total += ar.Share
	}
	fx.Kinds = nil
	var cum []float64
	acc := 0.0
	for _, ar := range arches {
		at := "items"
		if len(ar.Items) > 0 {
			at = "archetypes." + ar.Name + ".items"
		}
		idx, c, err := weightedOffers(at, ar.items(s), fx.Offers, skipped)
		if err != nil {
			return err
		}
		if ar.mix(s)[ActionPurchase] > 0 && len(fx.Offers) > 0 && len(idx) == 0 {
			return fmt.Errorf("%s: purchases have weight but every offer has weight zero", at)
		}
		fx.Kinds = append(fx.Kinds, PlayerKind{Archetype: ar, offerIdx: idx, offerCum: c})
		acc += ar.Share / total
		cum = append(cum, acc)
	}
	n := len(fx.Players)
	for i, p := range fx.Players {
		x := (float64(i) + 0.5) / float64(n)
		k := min(sort.SearchFloat64s(cum, x), len(cum)-1)
		p.kind = k
		fx.Kinds[k].Players++
	}
	return nil
}

// KindsText lists the archetypes and their players: "casual 6 players,
// whale 2 players".
func (fx *Fixture) KindsText() string {
	var parts []string
	for _, k := range fx.Kinds {
		parts = append(parts, fmt.Sprintf("%s %d players", k.Archetype.Name, k.Players))
	}
	return strings.Join(parts, ", ")
}

// fundingFor expands the --fund setting against the catalog's currencies:
// "*" applies to every currency, a named currency overrides it.
func fundingFor(fund map[string]int64, currencies []string) map[string]int64 {
	out := map[string]int64{}
	for _, cur := range currencies {
		if amt, ok := fund[cur]; ok {
			out[cur] = amt
		} else if amt, ok := fund["*"]; ok {
			out[cur] = amt
		}
	}
	for cur, amt := range fund {
		if cur != "*" {
			out[cur] = amt // a currency the catalog does not list yet still gets funded
		}
	}
	for cur, amt := range out {
		if amt <= 0 {
			delete(out, cur)
		}
	}
	return out
}

// fund grants every player its starting balance, a few players at a time.
// Each grant carries an idempotency key, so a grant retried after a timeout
// is applied once.
func fund(ctx context.Context, c *Client, fx *Fixture, obs *Observed) error {
	const parallel = 8
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		mu    sync.Mutex
		first error
	)
	for range min(parallel, len(fx.Players)) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(fx.Players)) || ctx.Err() != nil {
					return
				}
				if err := fundOne(ctx, c, fx, fx.Players[i], obs); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func fundOne(ctx context.Context, c *Client, fx *Fixture, p *Player, obs *Observed) error {
	key := fmt.Sprintf("lt-%s-fund-%s", fx.RunID, p.ID)
	g := GrantRequest{Reason: "loadtest funding", Currencies: fx.Funding, Items: map[string]int64{}}
	for attempt := 1; ; attempt++ {
		r, res, err := c.Grant(ctx, p.ID, key, g)
		if res != nil {
			obs.Grant(p.ID, res.GrantID, key, g)
			return nil
		}
		if err != nil && r != nil {
			return fmt.Errorf("funding %s: %w", p.ID, err) // a 201 the tool cannot read
		}
		// No answer, 429 or 5xx: the grant may or may not have happened.
		// The same key makes a retry safe; until one attempt answers, the
		// outcome stays unknown to verification.
		if r != nil && r.Status != http.StatusTooManyRequests && r.Status < 500 {
			return statusError("funding "+p.ID+" (POST /admin/v1/players/{id}/grants)", r)
		}
		obs.UnknownGrant(p.ID, key, g)
		if attempt == 3 {
			if err != nil {
				return fmt.Errorf("funding %s: %w", p.ID, err)
			}
			return statusError("funding "+p.ID, r)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * 250 * time.Millisecond):
		}
	}
}

// probeOwnershipRoute finds out whether the server has the server-to-server
// entitlement route. It returns why the scenario cannot run, or "".
func probeOwnershipRoute(ctx context.Context, c *Client, cfg Config, fx *Fixture) string {
	if cfg.ServerToken == "" {
		return "no server token (--server-token or COINOP_SERVER_TOKEN)"
	}
	item := "loadtest-probe"
	if len(fx.Offers) > 0 {
		item = fx.Offers[0].ItemID
	}
	r, err := c.CheckOwnership(ctx, fx.Players[0].ID, item)
	switch {
	case err != nil:
		return "probe failed: " + err.Error()
	case r.Status == http.StatusOK:
		return ""
	case r.Status == http.StatusNotFound && r.Code != "item_not_found":
		return "the server has no GET /v1/players/{player_id}/entitlements/{item_id} route (404)"
	case r.Status == http.StatusNotFound:
		return ""
	default:
		return fmt.Sprintf("probe answered HTTP %d %s", r.Status, r.Code)
	}
}

// probeReceiptRoute finds out whether the server redeems receipts (it does
// only with a store configured) by sending one that cannot verify. It
// returns why the scenario cannot run, or "".
func probeReceiptRoute(ctx context.Context, c *Client, cfg Config, fx *Fixture) string {
	body := map[string]string{"store": cfg.ReceiptStore, "signed_transaction": "loadtest-probe-not-a-jws"}
	r, err := c.Do(ctx, http.MethodPost, "/v1/receipts", fx.Players[0].Token, body, nil)
	switch {
	case err != nil:
		return "probe failed: " + err.Error()
	case r.Status == http.StatusNotFound && (r.Code == "not_found" || r.Code == "http_404"):
		return "the server has no POST /v1/receipts route (404); run it with a store configured, e.g. COINOP_STORES=fake"
	}
	return ""
}

// ReceiptPool hands out pre-minted signed transactions, each once: a store
// transaction can be redeemed only once, so reusing one would measure the
// duplicate-receipt path instead.
type ReceiptPool struct {
	items []string
	next  atomic.Int64
}

// NewReceiptPool returns a pool over items.
func NewReceiptPool(items []string) *ReceiptPool { return &ReceiptPool{items: items} }

// Len is the number of transactions the pool started with.
func (p *ReceiptPool) Len() int { return len(p.items) }

// Take returns the next unused transaction, or false when all are used.
func (p *ReceiptPool) Take() (string, bool) {
	i := p.next.Add(1) - 1
	if i >= int64(len(p.items)) {
		return "", false
	}
	return p.items[i], true
}

// ReadReceipts reads one signed transaction (JWS) per line, as printed by
// `coinop receipts mint`; blank lines and #-comments are ignored.
func ReadReceipts(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Count(line, ".") != 2 {
			return nil, fmt.Errorf("receipts line %d: not a compact JWS (header.payload.signature)", n)
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// sortedKeys is maps.Keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
