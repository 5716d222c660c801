package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The creator program: setup creates creators (admin API) and has a share
// of the players set their codes; the load phase mixes in tips; and
// verification holds each creator's earnings against the exact sum of the
// shares of what the tool saw succeed: purchases and server spends by
// players under the creator's code, and tips to it less the studio's fee.
// The server exposes neither its share nor its fee, so the operator states
// them (--creator-share, --creator-tip-fee, --creator-currencies, with the
// server's defaults), and a mismatch says what the server's statement
// implies it runs with.

// CreatorProgram is the server's creator program as verification needs it.
type CreatorProgram struct {
	SharePPM   int64    `json:"share_ppm"`
	TipFeePPM  int64    `json:"tip_fee_ppm"`
	Currencies []string `json:"currencies,omitempty"` // covered by the code share; empty: all
}

// Millionths: a share is in parts per million and a credit in micro-units.
const (
	microPerUnit = 1_000_000
	maxSharePPM  = 1_000_000
)

// Validate returns an error for a share or fee outside 0..100%.
func (p CreatorProgram) Validate() error {
	switch {
	case p.SharePPM < 0 || p.SharePPM > maxSharePPM:
		return fmt.Errorf("--creator-share must be 0%% to 100%%")
	case p.TipFeePPM < 0 || p.TipFeePPM > maxSharePPM:
		return fmt.Errorf("--creator-tip-fee must be 0%% to 100%%")
	}
	return nil
}

func (p CreatorProgram) covers(currency string) bool {
	return len(p.Currencies) == 0 || slices.Contains(p.Currencies, currency)
}

// String is "share 5%, tip fee 0%, every currency".
func (p CreatorProgram) String() string {
	cov := "every currency"
	if len(p.Currencies) > 0 {
		cov = "currencies " + strings.Join(p.Currencies, ",")
	}
	return fmt.Sprintf("share %s, tip fee %s, %s", formatShare(p.SharePPM), formatShare(p.TipFeePPM), cov)
}

// The arithmetic below repeats the server's (creators.Credit,
// Program.PurchaseCredits and Program.TipCredit in package creators) on
// purpose: this package may import nothing from the module, and a shared
// function would let a server bug agree with itself. A credit is exactly
// amount × ppm micro-units, never rounded.

// creditMicro is amount × ppm, and false for a negative input or overflow.
func creditMicro(amount, ppm int64) (int64, bool) {
	if amount < 0 || ppm < 0 || ppm > maxSharePPM {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(amount), uint64(ppm))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo), true
}

// codeCredit is what spent units of currency credit the creator of the
// player's code: the program's share, capped so that it and the share of the
// item's own creator (itemSharePPM, 0 for none) never exceed what was spent.
func (p CreatorProgram) codeCredit(currency string, spent, itemSharePPM int64) (int64, bool) {
	if !p.covers(currency) || spent == 0 {
		return 0, true
	}
	left := int64(maxSharePPM)
	if itemSharePPM > 0 {
		left -= itemSharePPM
	}
	return creditMicro(spent, min(p.SharePPM, max(left, 0)))
}

// tipCredit is what a tip of amount units credits: the tip less the fee.
func (p CreatorProgram) tipCredit(amount int64) (int64, bool) {
	return creditMicro(amount, maxSharePPM-p.TipFeePPM)
}

// parseShare reads a percentage with at most four decimals ("5%", "2.5")
// into parts per million, exactly, as the server reads COINOP_CREATOR_SHARE.
func parseShare(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "%")
	whole, frac, _ := strings.Cut(t, ".")
	if whole == "" || len(whole) > 3 || len(frac) > 4 || strings.Trim(whole+frac, "0123456789") != "" {
		return 0, fmt.Errorf("%q: want a percentage like 5%% or 2.5%% (at most 4 decimals)", s)
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt((frac + "0000")[:4], 10, 64)
	ppm := w*10_000 + f
	if ppm > maxSharePPM {
		return 0, fmt.Errorf("%q: at most 100%%", s)
	}
	return ppm, nil
}

// formatShare writes parts per million as a percentage ("5%", "2.5%").
func formatShare(ppm int64) string {
	s := strconv.FormatInt(ppm/10_000, 10)
	if f := ppm % 10_000; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%04d", f), "0")
	}
	return s + "%"
}

// formatMicro writes micro-units as a decimal ("0.05", "-1.5", "3").
func formatMicro(micro int64) string {
	sign, u := "", uint64(micro)
	if micro < 0 {
		sign, u = "-", uint64(-(micro+1))+1
	}
	s := sign + strconv.FormatUint(u/microPerUnit, 10)
	if f := u % microPerUnit; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%06d", f), "0")
	}
	return s
}

// parseMicro reads a non-negative decimal with at most six decimals (a
// tip's creator_credit) as micro-units.
func parseMicro(s string) (int64, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(frac) > 6 || strings.Trim(whole+frac, "0123456789") != "" || len(whole) > 12 {
		return 0, false
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	return w*microPerUnit + f, true
}

// RunCreator is one creator the run created.
type RunCreator struct {
	ID      string `json:"creator_id"`
	Code    string `json:"code"`
	Players int    `json:"players"` // players who set its code
}

// creatorRequest is the body of POST /admin/v1/creators.
type creatorRequest struct {
	CreatorID   string   `json:"creator_id"`
	DisplayName string   `json:"display_name"`
	Codes       []string `json:"codes"`
}

// setupCreators creates the scenario's creators, each with one code, and
// sets the codes of every player the code share picks (player i of n is
// picked when floor((i+1)·share) > floor(i·share), so exactly
// floor(n·share) players, spread over the list and so over archetypes),
// the creators taking turns. It returns an error when the program is off or
// a creator or code cannot be set.
func setupCreators(ctx context.Context, c *Client, cfg Config, fx *Fixture, catalog Catalog) error {
	cm := cfg.Scenario.Creators
	for n := range cm.Count {
		rc := &RunCreator{ID: fmt.Sprintf("lt-%s-c%d", fx.RunID, n), Code: fmt.Sprintf("LT%sC%d", fx.RunID, n)}
		body := creatorRequest{CreatorID: rc.ID, DisplayName: "loadtest " + rc.ID, Codes: []string{rc.Code}}
		r, attempts, err := writeRetrying(ctx, c, http.MethodPost, "/admin/v1/creators", c.adminToken, body)
		switch {
		case err != nil:
			return fmt.Errorf("creating creator %s: %w", rc.ID, err)
		case r.Code == "creators_disabled":
			return fmt.Errorf("the server's creator program is off: start it with COINOP_CREATOR_PROGRAM=true, or run without --creators")
		case r.Status == http.StatusConflict && r.Code == "creator_exists" && attempts > 1:
			// An earlier attempt whose answer was lost created it: the
			// id holds this run's random id, so it is this run's.
		case r.Status != http.StatusCreated:
			return statusError("creating creator "+rc.ID+" (POST /admin/v1/creators)", r)
		}
		fx.Creators = append(fx.Creators, rc)
	}
	if len(fx.Creators) > 0 {
		var coded []*Player
		for i, p := range fx.Players {
			if math.Floor(float64(i+1)*cm.CodeShare) > math.Floor(float64(i)*cm.CodeShare) {
				rc := fx.Creators[len(coded)%len(fx.Creators)]
				p.creator = rc.ID
				rc.Players++
				coded = append(coded, p)
			}
		}
		if err := setCodes(ctx, c, fx, coded); err != nil {
			return err
		}
	}
	for _, cur := range catalog.Currencies {
		if cur.Tippable {
			fx.TipCurrencies = append(fx.TipCurrencies, cur.ID)
		}
	}
	// A creator-made item's share caps a code's share of its sales, but
	// only while its creator is active: the server leaves a suspended
	// creator's share out.
	fx.ItemShares = map[string]int64{}
	status := map[string]string{}
	for _, it := range catalog.Items {
		if it.CreatorID == "" || it.CreatorSharePPM <= 0 {
			continue
		}
		if _, ok := status[it.CreatorID]; !ok {
			path := "/admin/v1/creators/" + url.PathEscape(it.CreatorID)
			r, err := c.get(ctx, path, c.adminToken)
			if err != nil {
				return fmt.Errorf("GET %s: %w", path, err)
			}
			var cr struct {
				Status string `json:"status"`
			}
			if r.Status != http.StatusOK {
				return statusError("GET "+path+" (the creator of item "+it.ID+")", r)
			}
			if err := r.decode("GET "+path, &cr); err != nil {
				return err
			}
			status[it.CreatorID] = cr.Status
		}
		if status[it.CreatorID] == "active" {
			fx.ItemShares[it.ID] = it.CreatorSharePPM
		}
	}
	fx.BundleShares = bundleShares(&catalog, status)
	coded := 0
	for _, rc := range fx.Creators {
		coded += rc.Players
	}
	fx.Notes = append(fx.Notes, fmt.Sprintf("creators: %d (lt-%s-c0…), %d of %d players support one with its code; verified with %s",
		len(fx.Creators), fx.RunID, coded, len(fx.Players), cfg.Program))
	return nil
}

// bundleShares is, for each bundle holding creator-made items and each
// currency it is sold for, the sum of its active creators' shares: what
// caps a code's share of its sales. It repeats the server's rule
// (catalog.creatorShares: an item's share of the part of the bundle's list
// value the item is worth, rounded down to a whole ppm per creator) because
// the load tool may not import the module, and the server does not serve
// the rates.
func bundleShares(c *Catalog, status map[string]string) map[string]map[string]int64 {
	items := map[string]Item{}
	for _, it := range c.Items {
		if _, dup := items[it.ID]; !dup {
			items[it.ID] = it
		}
	}
	out := map[string]map[string]int64{}
	for _, b := range c.Bundles {
		for _, price := range b.Prices {
			total := new(big.Int)
			perCreator := map[string]*big.Int{}
			valued := true
			for id, qty := range b.Contents.Items {
				it, ok := items[id]
				unit := int64(0)
				for _, p := range it.Prices {
					if p.Currency == price.Currency {
						unit = p.Amount
					}
				}
				if !ok || unit == 0 {
					valued = false
					continue
				}
				v := new(big.Int).Mul(big.NewInt(unit), big.NewInt(qty))
				total.Add(total, v)
				if it.CreatorID != "" && it.CreatorSharePPM > 0 {
					if perCreator[it.CreatorID] == nil {
						perCreator[it.CreatorID] = new(big.Int)
					}
					perCreator[it.CreatorID].Add(perCreator[it.CreatorID], v.Mul(v, big.NewInt(it.CreatorSharePPM)))
				}
			}
			for id, n := range b.Contents.Currencies {
				if id != price.Currency {
					valued = false
					continue
				}
				total.Add(total, big.NewInt(n))
			}
			if len(perCreator) == 0 || !valued || total.Sign() == 0 {
				continue // the server credits no bundle share here
			}
			var sum int64
			for creator, w := range perCreator {
				if status[creator] == "active" {
					sum += new(big.Int).Quo(w, total).Int64()
				}
			}
			if out[b.ID] == nil {
				out[b.ID] = map[string]int64{}
			}
			out[b.ID][price.Currency] = min(sum, maxSharePPM)
		}
	}
	return out
}

// setCodes has each player set its creator's code, a few players at a
// time, as funding does.
func setCodes(ctx context.Context, c *Client, fx *Fixture, players []*Player) error {
	codes := map[string]string{}
	for _, rc := range fx.Creators {
		codes[rc.ID] = rc.Code
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		next  int
		first error
	)
	for range min(8, len(players)) {
		wg.Go(func() {
			for {
				mu.Lock()
				i, stop := next, first != nil
				next++
				mu.Unlock()
				if i >= len(players) || stop || ctx.Err() != nil {
					return
				}
				p := players[i]
				code := codes[p.creator]
				r, _, err := writeRetrying(ctx, c, http.MethodPut, "/v1/creator-code", p.Token, map[string]string{"code": code})
				if err == nil && r.Status != http.StatusOK {
					err = statusError("player "+p.ID+" setting creator code "+code+" (PUT /v1/creator-code)", r)
				} else if err != nil {
					err = fmt.Errorf("player %s setting creator code %s: %w", p.ID, code, err)
				}
				if err != nil {
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

// writeRetrying sends a setup write that is safe to repeat (creating a
// creator whose id is this run's, setting a code), again after no answer,
// 429 or 5xx, up to three times. It returns the last answer and how many
// attempts were made.
func writeRetrying(ctx context.Context, c *Client, method, path, token string, body any) (*Response, int, error) {
	for attempt := 1; ; attempt++ {
		r, err := c.Do(ctx, method, path, token, body, nil)
		if err == nil && r.Status != http.StatusTooManyRequests && r.Status < 500 {
			return r, attempt, nil
		}
		if attempt == 3 {
			if err != nil {
				return nil, attempt, err
			}
			return r, attempt, nil
		}
		select {
		case <-ctx.Done():
			return nil, attempt, ctx.Err()
		case <-time.After(time.Duration(attempt) * 250 * time.Millisecond):
		}
	}
}

// TipRequest is the body of POST /v1/creators/{id}/tips.
type TipRequest struct {
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
}

// TipResult is the part of a tip's 201 answer the tool reads.
type TipResult struct {
	TipID         string `json:"tip_id"`
	CreatorID     string `json:"creator_id"`
	Currency      string `json:"currency"`
	Amount        int64  `json:"amount"`
	CreatorCredit string `json:"creator_credit"`
}

// tip sends one tip to a creator of the run, retried with the same key
// while its outcome is unknown, as a game client does; a share of tips
// (the purchases' retry_share) is sent once more after its answer, which
// must replay the first.
func (r *runner) tip(shard int, seq string, due time.Time, rng *rand.Rand, p *Player) {
	rc := r.fx.Creators[rng.IntN(len(r.fx.Creators))]
	req := TipRequest{Currency: r.fx.TipCurrencies[rng.IntN(len(r.fx.TipCurrencies))], Amount: 1 + rng.Int64N(r.cfg.Scenario.Creators.TipMax)}
	retry := rng.Float64() < r.cfg.Scenario.Purchase.RetryShare
	key := fmt.Sprintf("lt-%s-tip-%s", r.fx.RunID, seq)
	path := "/v1/creators/" + url.PathEscape(rc.ID) + "/tips"
	var first *Response
	for attempt := 1; attempt <= postingAttempts; attempt++ {
		since := due
		if attempt > 1 {
			since = time.Now()
		}
		resp, code, ok := r.send(http.MethodPost, path, p.Token, req, idemHeader(key))
		if !ok || code == "canceled" {
			return
		}
		var settled bool
		code, settled = r.tipOutcome(p, rc.ID, key, req, resp, code)
		r.record(shard, EndpointTip, since, code)
		if settled {
			first = resp
			break
		}
	}
	if !retry || first == nil {
		return
	}
	sent := time.Now()
	again, code, ok := r.send(http.MethodPost, path, p.Token, req, idemHeader(key))
	if !ok || code == "canceled" {
		return
	}
	if again != nil {
		code, _ = r.tipOutcome(p, rc.ID, key, req, again, "")
		switch {
		case !replayable(first):
		case again.Status != first.Status:
			code = fmt.Sprintf("replay_status_%d_after_%d", again.Status, first.Status)
		case !sameJSON(again.Body, first.Body):
			code = "replay_mismatch"
		case first.Status == http.StatusCreated && again.Header.Get("Idempotent-Replayed") != "true":
			code = "replay_not_marked"
		}
	}
	r.record(shard, EndpointTipRetry, sent, code)
}

// tipOutcome classifies one answer to a tip and records what the server
// committed. settled is false when the outcome is unknown and the tip
// should be sent again with the same key.
func (r *runner) tipOutcome(p *Player, creatorID, key string, req TipRequest, resp *Response, code string) (string, bool) {
	if resp == nil || resp.Status >= 500 || resp.Code == "rate_limited" || resp.Code == "idempotency_key_in_use" {
		r.obs.UnknownTip(p.ID, creatorID, key, req)
		if resp != nil {
			return codeOf(resp), false
		}
		return code, false
	}
	switch {
	case resp.Status == http.StatusCreated:
		var res TipResult
		if json.Unmarshal(resp.Body, &res) != nil || res.TipID == "" {
			r.obs.UnknownTip(p.ID, creatorID, key, req)
			return "bad_body", true
		}
		if res.CreatorID != creatorID || res.Currency != req.Currency || res.Amount != req.Amount {
			r.obs.UnknownTip(p.ID, creatorID, key, req)
			return "wrong_tip", true
		}
		r.obs.Tip(p.ID, key, res)
		return "", true
	case resp.Status == http.StatusPaymentRequired && resp.Code == "insufficient_funds",
		resp.Status == http.StatusTooManyRequests && resp.Code == "tip_limit_exceeded":
		// Purchases and spends of the same player race, and a long run
		// reaches the daily limit: answers the server must be able to
		// give, which moved nothing.
		return "", true
	default:
		return codeOf(resp), true
	}
}

// creditTally is what verification expects each creator to have earned,
// gathered player by player. Safe for concurrent use.
type creditTally struct {
	mu       sync.Mutex
	expected map[string]map[string]int64 // creator → currency → micro-units
	credited map[string]int              // creator → purchases and spends under its code
	tips     map[string]int              // creator → tips
	problems []Problem
	// tipsOff counts tips whose answer names another credit than the tip
	// less the fee; tipExample describes the first.
	tipsOff    int
	tipExample string
}

func newCreditTally() *creditTally {
	return &creditTally{expected: map[string]map[string]int64{}, credited: map[string]int{}, tips: map[string]int{}}
}

func (t *creditTally) add(creator, currency string, micro int64) {
	if t.expected[creator] == nil {
		t.expected[creator] = map[string]int64{}
	}
	t.expected[creator][currency] += micro
}

// addPlayer counts what one player's acknowledged purchases, spends and
// tips credit, plus the attempts whose answer was lost but whose ledger
// transaction verification found (confirmed): each once, by its key, as
// CheckPlayer matched them.
func (t *creditTally) addPlayer(fx *Fixture, p *Player, seen PlayerRecord, confirmed []Attempt) {
	prog := fx.Program
	t.mu.Lock()
	defer t.mu.Unlock()
	overflow := func(what string) {
		t.problems = append(t.problems, Problem{Kind: ProblemUnverifiable, PlayerID: p.ID, Detail: what + ": its creator credit overflows int64"})
	}
	spend := func(currency string, spent, itemShare int64, what string) {
		if p.creator == "" {
			return
		}
		m, ok := prog.codeCredit(currency, spent, itemShare)
		if !ok {
			overflow(what)
			return
		}
		t.add(p.creator, currency, m)
		t.credited[p.creator]++
	}
	tip := func(creator, currency string, amount int64, what string) {
		m, ok := prog.tipCredit(amount)
		if !ok {
			overflow(what)
			return
		}
		t.add(creator, currency, m)
		t.tips[creator]++
	}
	purchase := func(item string, qty int64, price Price, what string) {
		hi, lo := bits.Mul64(uint64(max(price.Amount, 0)), uint64(max(qty, 0)))
		if hi != 0 || lo > math.MaxInt64 {
			overflow(what)
			return
		}
		share := fx.ItemShares[item]
		if bs, ok := fx.BundleShares[item]; ok {
			share = bs[price.Currency]
		}
		spend(price.Currency, int64(lo), share, what)
	}
	for _, id := range sortedKeys(seen.Purchases) {
		sp := seen.Purchases[id]
		purchase(sp.ItemID, sp.Quantity, sp.Price, "purchase "+id)
	}
	for _, id := range sortedKeys(seen.Postings) {
		if sp := seen.Postings[id]; sp.Kind == KindSpend {
			for _, asset := range sortedKeys(sp.Moves) {
				if cur, ok := strings.CutPrefix(asset, "currency:"); ok && sp.Moves[asset] < 0 {
					spend(cur, -sp.Moves[asset], 0, "spend "+id)
				}
			}
		}
	}
	for _, id := range sortedKeys(seen.Tips) {
		st := seen.Tips[id]
		tip(st.CreatorID, st.Currency, st.Amount, "tip "+id)
		got, ok := parseMicro(st.Credit)
		if want, _ := prog.tipCredit(st.Amount); !ok || got != want {
			if t.tipsOff++; t.tipsOff == 1 {
				t.tipExample = fmt.Sprintf("tip %s by %s of %d %s to %s was answered creator_credit %q, the tip less a %s fee is %s",
					id, p.ID, st.Amount, st.Currency, st.CreatorID, st.Credit, formatShare(prog.TipFeePPM), formatMicro(want))
			}
		}
	}
	for _, a := range confirmed {
		switch a.Kind {
		case KindPurchase:
			purchase(a.ItemID, a.Quantity, a.Price, "unanswered purchase "+a.Key)
		case KindSpend:
			for _, cur := range sortedKeys(a.Currencies) {
				spend(cur, a.Currencies[cur], 0, "unanswered spend "+a.Key)
			}
		case KindTip:
			for _, cur := range sortedKeys(a.Currencies) {
				tip(a.CreatorID, cur, a.Currencies[cur], "unanswered tip "+a.Key)
			}
		}
	}
}

// CreatorCheck is one creator's earnings held against what the run's
// acknowledged purchases, spends and tips credit it.
type CreatorCheck struct {
	CreatorID string `json:"creator_id"`
	Code      string `json:"code"`
	Players   int    `json:"players"`  // players under its code
	Credited  int    `json:"credited"` // their purchases and spends counted
	Tips      int    `json:"tips"`
	// ExpectedMicro is the exact sum of the shares; EarnedMicro is the
	// server's earned_micro (pending included), per currency.
	ExpectedMicro map[string]int64 `json:"expected_micro"`
	EarnedMicro   map[string]int64 `json:"earned_micro"`
	OK            bool             `json:"ok"`
}

// creatorEarning is one currency of GET /admin/v1/creators/{id}/earnings.
type creatorEarning struct {
	Currency     string `json:"currency"`
	EarnedMicro  int64  `json:"earned_micro"`
	PendingMicro int64  `json:"pending_micro"`
}

// statementLine is the part of a statement line a mismatch is explained
// with.
type statementLine struct {
	Kind     string `json:"kind"`
	Currency string `json:"currency"`
	Micro    int64  `json:"micro"`
	Spent    int64  `json:"spent"`
}

// verifyCreators reads every creator's earnings and compares them, to the
// micro-unit, with the tally.
func verifyCreators(ctx context.Context, c *Client, fx *Fixture, t *creditTally) ([]CreatorCheck, []Problem) {
	probs := slices.Clone(t.problems)
	if t.tipsOff > 0 {
		probs = append(probs, Problem{Kind: ProblemCreatorEarnings, Detail: fmt.Sprintf(
			"%d tips were answered with a creator_credit other than the tip less the fee, first %s (is --creator-tip-fee the server's COINOP_CREATOR_TIP_FEE?)", t.tipsOff, t.tipExample)})
	}
	var checks []CreatorCheck
	for _, rc := range fx.Creators {
		ch := CreatorCheck{CreatorID: rc.ID, Code: rc.Code, Players: rc.Players, Credited: t.credited[rc.ID], Tips: t.tips[rc.ID],
			ExpectedMicro: map[string]int64{}, EarnedMicro: map[string]int64{}, OK: true}
		for cur, m := range t.expected[rc.ID] {
			if m != 0 {
				ch.ExpectedMicro[cur] = m
			}
		}
		path := "/admin/v1/creators/" + url.PathEscape(rc.ID) + "/earnings"
		var body struct {
			Earnings []creatorEarning `json:"earnings"`
		}
		r, err := c.get(ctx, path, c.adminToken)
		if err == nil && r.Status != http.StatusOK {
			err = statusError("GET "+path, r)
		}
		if err == nil {
			err = r.decode("GET "+path, &body)
		}
		if err != nil {
			ch.OK = false
			probs = append(probs, Problem{Kind: ProblemUnverifiable, Detail: fmt.Sprintf("creator %s: %v", rc.ID, err)})
			checks = append(checks, ch)
			continue
		}
		for _, e := range body.Earnings {
			if e.EarnedMicro != 0 {
				ch.EarnedMicro[e.Currency] = e.EarnedMicro
			}
		}
		var off []string
		for _, cur := range unionKeys(ch.ExpectedMicro, ch.EarnedMicro) {
			got, want := ch.EarnedMicro[cur], ch.ExpectedMicro[cur]
			if got != want {
				diff := "more"
				if got < want {
					diff = "less"
				}
				off = append(off, fmt.Sprintf("%s earned_micro %d, the exact sum of its shares is %d (%d micro-units %s)", cur, got, want, absDiff(got, want), diff))
			}
		}
		if len(off) > 0 {
			ch.OK = false
			detail := fmt.Sprintf("creator %s: %s, over %d purchases and spends under its code at %s and %d tips less a %s fee",
				rc.ID, strings.Join(off, "; "), ch.Credited, formatShare(fx.Program.SharePPM), ch.Tips, formatShare(fx.Program.TipFeePPM))
			if hint := programHint(ctx, c, rc.ID, fx.Program); hint != "" {
				detail += "; " + hint
			}
			probs = append(probs, Problem{Kind: ProblemCreatorEarnings, Detail: detail})
		}
		checks = append(checks, ch)
	}
	return checks, probs
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// programHint reads a creator's statement and, when its code and tip lines
// all imply one share or fee other than the tool was given, says so: the
// usual cause of a mismatch is a server run with other settings. It
// returns "" when the statement implies the settings given (or nothing).
func programHint(ctx context.Context, c *Client, creatorID string, prog CreatorProgram) string {
	path := "/admin/v1/creators/" + url.PathEscape(creatorID) + "/statement?format=json"
	r, err := c.get(ctx, path, c.adminToken)
	if err != nil || r.Status != http.StatusOK {
		return ""
	}
	var st struct {
		Lines []statementLine `json:"lines"`
	}
	if json.Unmarshal(r.Body, &st) != nil {
		return ""
	}
	// implied is the single ppm every line of kind implies, or -1.
	implied := func(kind string, ppmOf func(statementLine) int64) int64 {
		seen := int64(-1)
		for _, l := range st.Lines {
			if l.Kind != kind || l.Spent <= 0 {
				continue
			}
			if l.Micro%l.Spent != 0 {
				return -1
			}
			ppm := ppmOf(l)
			if seen >= 0 && ppm != seen {
				return -1
			}
			seen = ppm
		}
		return seen
	}
	var hints []string
	if share := implied("code", func(l statementLine) int64 { return l.Micro / l.Spent }); share >= 0 && share != prog.SharePPM {
		hints = append(hints, fmt.Sprintf("its statement credits code purchases %s, not %s: does the server run with COINOP_CREATOR_SHARE=%s? give --creator-share %s",
			formatShare(share), formatShare(prog.SharePPM), formatShare(share), formatShare(share)))
	}
	if fee := implied("tip", func(l statementLine) int64 { return maxSharePPM - l.Micro/l.Spent }); fee >= 0 && fee != prog.TipFeePPM {
		hints = append(hints, fmt.Sprintf("its statement keeps a tip fee of %s, not %s: does the server run with COINOP_CREATOR_TIP_FEE=%s? give --creator-tip-fee %s",
			formatShare(fee), formatShare(prog.TipFeePPM), formatShare(fee), formatShare(fee)))
	}
	return strings.Join(hints, "; ")
}

// writeCreatorsText prints the creator figures under the verification line.
func writeCreatorsText(w io.Writer, v *Verification) {
	if len(v.Creators) == 0 {
		return
	}
	credited, tips, ok := 0, 0, 0
	for _, ch := range v.Creators {
		credited += ch.Credited
		tips += ch.Tips
		if ch.OK {
			ok++
		}
	}
	fmt.Fprintf(w, "creators: %d (%s): %d purchases and spends under their codes and %d tips; %d of %d earn exactly the sum of their shares\n",
		len(v.Creators), v.CreatorProgram, credited, tips, ok, len(v.Creators))
	for _, ch := range v.Creators {
		status := "ok"
		if !ch.OK {
			status = "MISMATCH"
		}
		fmt.Fprintf(w, "  %-20s %d players, %d credited, %d tips: expected %s, earned %s  %s\n",
			ch.CreatorID, ch.Players, ch.Credited, ch.Tips, microText(ch.ExpectedMicro), microText(ch.EarnedMicro), status)
	}
}

// microText writes per-currency micro-units as decimals: "gems=1.25 gold=3".
func microText(m map[string]int64) string {
	if len(m) == 0 {
		return "nothing"
	}
	var parts []string
	for _, cur := range sortedKeys(m) {
		parts = append(parts, cur+"="+formatMicro(m[cur]))
	}
	return strings.Join(parts, " ")
}
