package loadtest

import (
	"maps"
	"sync"
)

// Observed is what the tool saw the server commit, per player: every
// purchase and grant answered 201, and every attempt whose outcome it never
// learned (timeout, connection lost, 5xx). Verification holds the ledger
// against it. Safe for concurrent use.
type Observed struct {
	mu      sync.Mutex
	players map[string]*PlayerRecord
}

// PlayerRecord is what was observed for one player.
type PlayerRecord struct {
	Purchases map[string]SeenPurchase // by purchase_id
	Grants    map[string]SeenGrant    // by grant_id
	// Postings holds the server postings (awards, spends, consumptions)
	// answered 201, by posting_id.
	Postings map[string]SeenPosting
	// Keys maps each idempotency key that got a 201 to the distinct ids the
	// server answered with; more than one id for a key is a duplicate.
	Keys map[string]map[string]bool
	// Unknown holds attempts, by idempotency key, that never got an answer.
	// A ledger transaction matching one is unconfirmed, not unexpected.
	Unknown map[string]Attempt
	// Receipts counts redemptions answered with success; UnknownReceipts
	// those that got no answer.
	Receipts        int
	UnknownReceipts int
	// Refunds counts store refunds the store chaos delivered and the
	// server accepted: each explains one store_refund ledger transaction.
	Refunds int
	// Tips holds the tips answered 201, by tip_id.
	Tips map[string]SeenTip
}

// SeenTip is a tip the server answered 201.
type SeenTip struct {
	ID        string `json:"tip_id"`
	Key       string `json:"idempotency_key"`
	CreatorID string `json:"creator_id"`
	Currency  string `json:"currency"`
	Amount    int64  `json:"amount"`
	// Credit is what the answer says the creator is credited (a decimal).
	Credit string `json:"creator_credit"`
}

// SeenPurchase is a purchase the server answered 201.
type SeenPurchase struct {
	ID       string `json:"purchase_id"`
	Key      string `json:"idempotency_key"`
	ItemID   string `json:"item_id"`
	Quantity int64  `json:"quantity"`
	Price    Price  `json:"price"`
}

// SeenGrant is an admin grant the server answered 201.
type SeenGrant struct {
	ID         string           `json:"grant_id"`
	Key        string           `json:"idempotency_key"`
	Currencies map[string]int64 `json:"currencies"`
	Items      map[string]int64 `json:"items"`
}

// SeenPosting is a server posting the server answered 201.
type SeenPosting struct {
	ID   string `json:"posting_id"`
	Key  string `json:"idempotency_key"`
	Kind string `json:"kind"`
	// Moves is what it moves on the player's account, signed, by
	// "currency:id" and "item:id".
	Moves map[string]int64 `json:"moves"`
}

// Attempt is a purchase, grant, posting or tip whose outcome is unknown.
type Attempt struct {
	Kind       string // KindPurchase, KindAdminGrant, KindTip or a posting's kind
	Key        string
	ItemID     string
	Quantity   int64
	Price      Price            // a purchase's unit price
	Currencies map[string]int64 // a grant's or posting's currencies, or a tip's
	CreatorID  string           // a tip's creator
}

// NewObserved returns an empty record.
func NewObserved() *Observed { return &Observed{players: map[string]*PlayerRecord{}} }

func (o *Observed) player(id string) *PlayerRecord {
	p := o.players[id]
	if p == nil {
		p = &PlayerRecord{
			Purchases: map[string]SeenPurchase{}, Grants: map[string]SeenGrant{}, Postings: map[string]SeenPosting{},
			Keys: map[string]map[string]bool{}, Unknown: map[string]Attempt{}, Tips: map[string]SeenTip{},
		}
		o.players[id] = p
	}
	return p
}

func (p *PlayerRecord) answered(key, id string) {
	if p.Keys[key] == nil {
		p.Keys[key] = map[string]bool{}
	}
	p.Keys[key][id] = true
	delete(p.Unknown, key) // an answer to any attempt settles the key
}

// Purchase records a 201 for a purchase. It reports whether the purchase
// id is new, so a replayed answer is not counted as a second delivery.
func (o *Observed) Purchase(playerID, key string, req PurchaseRequest, res *PurchaseResult) (first bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.player(playerID)
	_, seen := p.Purchases[res.PurchaseID]
	p.Purchases[res.PurchaseID] = SeenPurchase{ID: res.PurchaseID, Key: key, ItemID: req.ItemID, Quantity: req.Quantity, Price: req.Price}
	p.answered(key, res.PurchaseID)
	return !seen
}

// UnknownPurchase records a purchase attempt that got no answer.
func (o *Observed) UnknownPurchase(playerID, key string, req PurchaseRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.player(playerID)
	if p.Keys[key] == nil {
		p.Unknown[key] = Attempt{Kind: KindPurchase, Key: key, ItemID: req.ItemID, Quantity: req.Quantity, Price: req.Price}
	}
}

// Grant records a 201 for an admin grant.
func (o *Observed) Grant(playerID, grantID, key string, g GrantRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.player(playerID)
	p.Grants[grantID] = SeenGrant{ID: grantID, Key: key, Currencies: maps.Clone(g.Currencies), Items: maps.Clone(g.Items)}
	p.answered(key, grantID)
}

// UnknownGrant records a grant attempt that got no answer.
func (o *Observed) UnknownGrant(playerID, key string, g GrantRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.player(playerID)
	if p.Keys[key] == nil {
		p.Unknown[key] = Attempt{Kind: KindAdminGrant, Key: key, Currencies: maps.Clone(g.Currencies)}
	}
}

// Posting records a 201 for a server posting. It reports whether the
// posting id is new, so a replayed answer is not counted twice.
func (o *Observed) Posting(playerID, kind, key string, req PostingRequest, postingID string) (first bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.player(playerID)
	_, seen := p.Postings[postingID]
	p.Postings[postingID] = SeenPosting{ID: postingID, Key: key, Kind: kind, Moves: req.deltas(kind)}
	p.answered(key, postingID)
	return !seen
}

// UnknownPosting records a posting attempt that got no answer.
func (o *Observed) UnknownPosting(playerID, kind, key string, req PostingRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.player(playerID)
	if p.Keys[key] == nil {
		p.Unknown[key] = Attempt{Kind: kind, Key: key, Currencies: maps.Clone(req.Currencies)}
	}
}

// Tip records a 201 for a tip. It reports whether the tip id is new.
func (o *Observed) Tip(playerID, key string, res TipResult) (first bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.player(playerID)
	_, seen := p.Tips[res.TipID]
	p.Tips[res.TipID] = SeenTip{ID: res.TipID, Key: key, CreatorID: res.CreatorID, Currency: res.Currency, Amount: res.Amount, Credit: res.CreatorCredit}
	p.answered(key, res.TipID)
	return !seen
}

// UnknownTip records a tip attempt that got no answer.
func (o *Observed) UnknownTip(playerID, creatorID, key string, req TipRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.player(playerID)
	if p.Keys[key] == nil {
		p.Unknown[key] = Attempt{Kind: KindTip, Key: key, CreatorID: creatorID, Currencies: map[string]int64{req.Currency: req.Amount}}
	}
}

// TipCount totals the tips answered 201 over all players.
func (o *Observed) TipCount() (n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range o.players {
		n += len(p.Tips)
	}
	return n
}

// Receipt records a receipt redemption: answered true for a success, false
// for no answer at all.
func (o *Observed) Receipt(playerID string, answered bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.player(playerID)
	if answered {
		p.Receipts++
	} else {
		p.UnknownReceipts++
	}
}

// Refund records a store refund the server accepted for the player.
func (o *Observed) Refund(playerID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.player(playerID).Refunds++
}

// Player returns a deep copy of what was observed for one player (empty
// when nothing was).
func (o *Observed) Player(id string) PlayerRecord {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.player(id)
	c := PlayerRecord{
		Purchases: maps.Clone(p.Purchases), Grants: maps.Clone(p.Grants), Postings: maps.Clone(p.Postings),
		Keys: map[string]map[string]bool{}, Unknown: maps.Clone(p.Unknown),
		Receipts: p.Receipts, UnknownReceipts: p.UnknownReceipts, Refunds: p.Refunds, Tips: maps.Clone(p.Tips),
	}
	for k, ids := range p.Keys {
		c.Keys[k] = maps.Clone(ids)
	}
	return c
}

// PostingCount totals the server postings answered 201 over all players.
func (o *Observed) PostingCount() (n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range o.players {
		n += len(p.Postings)
	}
	return n
}

// Counts totals purchases, grants and unanswered attempts over all players.
func (o *Observed) Counts() (purchases, grants, unknown int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range o.players {
		purchases += len(p.Purchases)
		grants += len(p.Grants)
		unknown += len(p.Unknown) + p.UnknownReceipts
	}
	return purchases, grants, unknown
}
