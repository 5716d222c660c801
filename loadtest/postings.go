package loadtest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
)

// Server postings: a game server awards, spends and consumes on a player's
// behalf (POST /v1/players/{id}/awards, /spends, /consumptions, with the
// server key). They move the same balances purchases do, from another
// writer, so mixing them in is how a run finds a ledger that double-applies
// one of them, or a cache that misses their changes.

// Ledger kinds of the server postings (the route's kind, as the server
// records it).
const (
	KindAward   = "award"
	KindSpend   = "spend"
	KindConsume = "consume"
)

// postingAttempts is how often a posting is sent before its outcome is left
// unknown: a game server retries a posting whose answer it did not get,
// with the same Idempotency-Key, so the server must apply it once.
const postingAttempts = 3

// PostingRequest is the body of a server posting.
type PostingRequest struct {
	Source     string           `json:"source"`
	Reason     string           `json:"reason"`
	Currencies map[string]int64 `json:"currencies,omitempty"`
	Items      map[string]int64 `json:"items,omitempty"`
}

// PostingResult is the part of a posting's 201 answer the tool reads.
type PostingResult struct {
	PostingID string `json:"posting_id"`
	Kind      string `json:"kind"`
	PlayerID  string `json:"player_id"`
}

// postingRoute is the path suffix of each kind.
var postingRoute = map[string]string{KindAward: "awards", KindSpend: "spends", KindConsume: "consumptions"}

// deltas is what a posting moves on the player's account, signed, by
// "currency:id" and "item:id".
func (req PostingRequest) deltas(kind string) map[string]int64 {
	sign := int64(1)
	if kind != KindAward {
		sign = -1
	}
	m := map[string]int64{}
	for id, n := range req.Currencies {
		m["currency:"+id] = sign * n
	}
	for id, n := range req.Items {
		m["item:"+id] = sign * n
	}
	return m
}

// awardItems are the items awards may give: consumables the tool buys too,
// without max_per_player (an award past the limit would be refused, and the
// refusal would be the tool's doing).
func awardItems(fx *Fixture) []string {
	var out []string
	for _, o := range fx.Offers {
		if !o.Bundle && len(o.Limits) == 0 {
			out = append(out, o.ItemID)
		}
	}
	return out
}

// posting builds and sends one server posting of kind, retrying with the
// same key while the outcome is unknown.
func (r *runner) posting(shard int, kind, seq string, due time.Time, rng *rand.Rand, p *Player) {
	req := PostingRequest{Source: "loadtest:" + r.fx.RunID, Reason: "loadtest " + kind}
	switch kind {
	case KindAward:
		if len(r.fx.Currencies) > 0 {
			cur := r.fx.Currencies[rng.IntN(len(r.fx.Currencies))]
			req.Currencies = map[string]int64{cur: 1 + rng.Int64N(10)}
		}
		if len(r.awardItems) > 0 && (req.Currencies == nil || rng.IntN(2) == 0) {
			req.Items = map[string]int64{r.awardItems[rng.IntN(len(r.awardItems))]: 1}
		}
		if req.Currencies == nil && req.Items == nil {
			r.wallet(shard, due, p)
			return
		}
	case KindSpend:
		if len(r.fx.Currencies) == 0 {
			r.wallet(shard, due, p)
			return
		}
		cur := r.fx.Currencies[rng.IntN(len(r.fx.Currencies))]
		req.Currencies = map[string]int64{cur: 1 + rng.Int64N(5)}
	case KindConsume:
		// Only what the tool saw the player receive, taken off its record
		// before sending so that a concurrent ownership check never
		// expects an item this consumption may already have used up.
		item, ok := p.takeOwned(func(n int) int { return rng.IntN(n) })
		if !ok {
			r.wallet(shard, due, p)
			return
		}
		req.Items = map[string]int64{item: 1}
	}
	key := fmt.Sprintf("lt-%s-%s-%s", r.fx.RunID, kind, seq)
	path := "/v1/players/" + url.PathEscape(p.ID) + "/" + postingRoute[kind]
	refused := false
	for attempt := 1; attempt <= postingAttempts; attempt++ {
		since := due
		if attempt > 1 {
			since = time.Now()
		}
		resp, code, ok := r.send(http.MethodPost, path, r.c.serverToken, req, idemHeader(key))
		if !ok || code == "canceled" {
			if attempt == 1 {
				refused = true // never sent: nothing can have happened
			}
			break
		}
		var settled bool
		code, settled = r.postingOutcome(p, kind, key, req, resp, code)
		r.record(shard, kind, since, code)
		if settled {
			refused = resp.Status >= 400
			break
		}
	}
	if refused && kind == KindConsume {
		p.addOwned(req.Items) // nothing was taken
	}
}

// postingOutcome classifies one answer to a posting and records what the
// server committed. settled is false when the outcome is unknown and the
// posting should be sent again with the same key.
func (r *runner) postingOutcome(p *Player, kind, key string, req PostingRequest, resp *Response, code string) (string, bool) {
	if resp == nil || resp.Status >= 500 || resp.Status == http.StatusTooManyRequests || resp.Code == "idempotency_key_in_use" {
		r.obs.UnknownPosting(p.ID, kind, key, req)
		if resp != nil {
			return codeOf(resp), false
		}
		return code, false
	}
	switch {
	case resp.Status == http.StatusCreated || resp.Status == http.StatusOK:
		var res PostingResult
		if json.Unmarshal(resp.Body, &res) != nil || res.PostingID == "" {
			r.obs.UnknownPosting(p.ID, kind, key, req)
			return "bad_body", true
		}
		if res.PlayerID != "" && res.PlayerID != p.ID {
			r.obs.UnknownPosting(p.ID, kind, key, req)
			return "wrong_player", true
		}
		if r.obs.Posting(p.ID, kind, key, req, res.PostingID) && kind == KindAward {
			p.addOwned(req.Items)
		}
		return "", true
	case resp.Status == http.StatusPaymentRequired && resp.Code == "insufficient_funds" && kind != KindAward:
		// Purchases and spends of the same player race: running short is
		// an answer the server must be able to give, and it moved nothing.
		return "", true
	default:
		return codeOf(resp), true
	}
}
