package entitlements_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
)

// creditEvent is a creator.credit event as the outbox holds it.
type creditEvent struct {
	PlayerID *string
	Postings []struct {
		LedgerTransactionID int64  `json:"ledger_transaction_id"`
		PlayerID            string `json:"player_id"`
		Kind                string `json:"kind"`
		Credits             []struct {
			CreatorID string `json:"creator_id"`
			Kind      string `json:"kind"`
			Micro     int64  `json:"micro"`
			Spent     int64  `json:"spent"`
		} `json:"credits"`
	} `json:"postings"`
}

func (e *refundEnv) creditEvents(t *testing.T) []creditEvent {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT player_id, data FROM events WHERE type = 'creator.credit' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []creditEvent
	for rows.Next() {
		var ev creditEvent
		var data []byte
		if err := rows.Scan(&ev.PlayerID, &data); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A commit of many players' purchases writes one creator.credit event that
// lists every credited posting, in order, with its own player and ledger
// transaction; a purchase committed alone carries its player on the
// envelope too. Uncredited postings are not listed.
func TestOneCreditEventPerCommitListsEveryCreditedPosting(t *testing.T) {
	e := newRefundEnv(t)
	ctx := context.Background()
	for _, p := range []string{"a", "b", "c"} {
		fund(t, e.ledger, p, map[string]int64{"gems": 1000})
	}
	for _, p := range []string{"a", "b"} {
		if _, err := e.svc.SetPlayerCode(ctx, p, "NINJA"); err != nil {
			t.Fatal(err)
		}
	}
	outs, errs := entitlements.PurchaseBatch(e.ledger, []entitlements.PurchaseRequest{
		{PlayerID: "a", IdempotencyKey: "k1", ItemID: "potion", Quantity: 1, Price: catalog.Price{Currency: "gems", Amount: 100}},
		{PlayerID: "c", IdempotencyKey: "k2", ItemID: "sword", Quantity: 1, Price: catalog.Price{Currency: "gems", Amount: 7}},
		{PlayerID: "b", IdempotencyKey: "k3", ItemID: "map-pack", Quantity: 2, Price: catalog.Price{Currency: "gems", Amount: 10}},
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("purchase %d: %v", i, err)
		}
	}
	evs := e.creditEvents(t)
	if len(evs) != 1 {
		t.Fatalf("%d creator.credit events for one commit, want 1", len(evs))
	}
	ev := evs[0]
	if ev.PlayerID != nil {
		t.Errorf("envelope player %q for two players' credits, want none", *ev.PlayerID)
	}
	if len(ev.Postings) != 2 {
		t.Fatalf("postings %+v, want a's and b's", ev.Postings)
	}
	a, b := ev.Postings[0], ev.Postings[1]
	if a.PlayerID != "a" || a.LedgerTransactionID != outs[0].Version || a.Kind != "purchase" || len(a.Credits) != 1 ||
		a.Credits[0].CreatorID != "ninja" || a.Credits[0].Kind != "code" || a.Credits[0].Micro != 5_000_000 || a.Credits[0].Spent != 100 {
		t.Errorf("a's posting %+v", a)
	}
	if b.PlayerID != "b" || b.LedgerTransactionID != outs[2].Version || len(b.Credits) != 2 {
		t.Fatalf("b's posting %+v", b)
	}
	// The map pack is maker's (30%) and b supports ninja (5%): 20 gems.
	got := map[string]int64{}
	for _, c := range b.Credits {
		got[c.CreatorID+"/"+c.Kind] = c.Micro
	}
	if got["maker/item"] != 6_000_000 || got["ninja/code"] != 1_000_000 {
		t.Errorf("b's credits %v", got)
	}
	// The event lists exactly the journal's rows.
	var rows int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM creator_credits`).Scan(&rows); err != nil || rows != 3 {
		t.Fatalf("%d credit rows, %v; want 3", rows, err)
	}

	// Alone, a purchase's event names its player.
	tx := e.buy(t, "a", "k4", "potion", 1, 100)
	evs = e.creditEvents(t)
	if len(evs) != 2 || evs[1].PlayerID == nil || *evs[1].PlayerID != "a" || len(evs[1].Postings) != 1 || evs[1].Postings[0].LedgerTransactionID != tx {
		t.Fatalf("lone purchase's event %+v", evs[len(evs)-1])
	}
}
