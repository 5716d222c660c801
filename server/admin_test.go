package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestLedgerPagination grants and buys, then walks the ledger one
// transaction per page by following next_before.
func TestLedgerPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 1; i <= 3; i++ {
		e.grant(t, "p1", fmt.Sprint("g", i), map[string]int64{"gold": int64(100 * i)}, nil)
	}
	if r := e.purchase(t, "p1", "buy", buy("potion", 2, "gold", 100)); r.status != http.StatusCreated {
		t.Fatalf("purchase: %s", r)
	}
	e.grant(t, "p2", "other", map[string]int64{"gems": 7}, nil)

	all := e.ledgerPage(t, "p1", "")
	if all.PlayerID != "p1" || len(all.Transactions) != 4 || all.NextBefore != nil {
		t.Fatalf("whole ledger: %+v", all)
	}
	var kinds []string
	for i, tx := range all.Transactions {
		kinds = append(kinds, tx.Kind)
		if i > 0 && tx.ID >= all.Transactions[i-1].ID {
			t.Errorf("ledger not newest first: %d after %d", tx.ID, all.Transactions[i-1].ID)
		}
	}
	if got := strings.Join(kinds, " "); got != "purchase admin_grant admin_grant admin_grant" {
		t.Errorf("kinds = %s", got)
	}

	// The purchase: two legs per asset, each pair summing to zero.
	buyTx := all.Transactions[0]
	var legs []string
	for _, en := range buyTx.Entries {
		legs = append(legs, fmt.Sprintf("%s %s/%s %d", en.Account, en.AssetType, en.AssetID, en.Amount))
	}
	slices.Sort(legs)
	if got := strings.Join(legs, "; "); got !=
		"player:p1 currency/gold -200; player:p1 item/potion 2; system:purchases currency/gold 200; system:purchases item/potion -2" {
		t.Errorf("purchase entries = %s", got)
	}
	var meta map[string]any
	if err := json.Unmarshal(buyTx.Metadata, &meta); err != nil || meta["item_id"] != "potion" || meta["idempotency_key"] != "buy" {
		t.Errorf("purchase metadata = %s", buyTx.Metadata)
	}
	grantTx := all.Transactions[1]
	if err := json.Unmarshal(grantTx.Metadata, &meta); err != nil || meta["reason"] != "test funding" || meta["actor"] != "admin-token" {
		t.Errorf("grant metadata = %s", grantTx.Metadata)
	}

	t.Run("limit=1 pages chain through next_before", func(t *testing.T) {
		var ids []int64
		query := "?limit=1"
		for range 10 {
			page := e.ledgerPage(t, "p1", query)
			if len(page.Transactions) != 1 {
				t.Fatalf("page %s has %d transactions", query, len(page.Transactions))
			}
			ids = append(ids, page.Transactions[0].ID)
			if page.NextBefore == nil {
				break
			}
			if *page.NextBefore != page.Transactions[0].ID {
				t.Errorf("next_before = %d, want the last id on the page %d", *page.NextBefore, page.Transactions[0].ID)
			}
			query = fmt.Sprintf("?limit=1&before=%d", *page.NextBefore)
		}
		var want []int64
		for _, tx := range all.Transactions {
			want = append(want, tx.ID)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("paged ids = %v, want %v", ids, want)
		}
	})

	t.Run("limit=3 leaves one for the last page, with no cursor after it", func(t *testing.T) {
		first := e.ledgerPage(t, "p1", "?limit=3")
		if len(first.Transactions) != 3 || first.NextBefore == nil {
			t.Fatalf("first page: %d transactions, next_before %v", len(first.Transactions), first.NextBefore)
		}
		last := e.ledgerPage(t, "p1", fmt.Sprintf("?limit=3&before=%d", *first.NextBefore))
		if len(last.Transactions) != 1 || last.NextBefore != nil || last.Transactions[0].ID != all.Transactions[3].ID {
			t.Fatalf("last page: %+v", last)
		}
		// A page that exactly fills the limit has no cursor.
		exact := e.ledgerPage(t, "p1", "?limit=4")
		if len(exact.Transactions) != 4 || exact.NextBefore != nil {
			t.Errorf("limit=4 of 4: %d transactions, next_before %v", len(exact.Transactions), exact.NextBefore)
		}
	})

	t.Run("an unknown player has an empty ledger", func(t *testing.T) {
		r := e.get(t, "/admin/v1/players/nobody/ledger", adminToken)
		if r.status != http.StatusOK || string(r.body) != `{"player_id":"nobody","transactions":[],"next_before":null}` {
			t.Errorf("ledger of nobody: %s", r)
		}
	})

	t.Run("the audit is ok and names its checks", func(t *testing.T) {
		r := e.get(t, "/admin/v1/audit", adminToken)
		var body struct {
			OK     bool `json:"ok"`
			Checks []struct {
				Name string `json:"name"`
				OK   bool   `json:"ok"`
			} `json:"checks"`
		}
		r.decode(t, &body)
		var names []string
		for _, c := range body.Checks {
			names = append(names, c.Name)
			if !c.OK {
				t.Errorf("check %s failed", c.Name)
			}
		}
		if r.status != http.StatusOK || !body.OK || !slices.Contains(names, "balances_match_ledger") || !slices.Contains(names, "entries_sum_to_zero_per_asset") {
			t.Errorf("audit: %s", r)
		}
	})
}

// TestAuditReportsABrokenLedger: the audit is only worth running if it
// notices. A balance changed behind the ledger's back makes it fail.
func TestAuditReportsABrokenLedger(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gold": 100}, nil)
	e.assertAuditOK(t)
	if _, err := e.pool.Exec(t.Context(), `UPDATE balances SET quantity = 1000000 WHERE player_id = 'p1' AND asset_id = 'gold'`); err != nil {
		t.Fatal(err)
	}
	r := e.get(t, "/admin/v1/audit", adminToken)
	var body struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name   string          `json:"name"`
			OK     bool            `json:"ok"`
			Detail json.RawMessage `json:"detail"`
		} `json:"checks"`
	}
	r.decode(t, &body)
	if r.status != http.StatusOK || body.OK {
		t.Fatalf("audit of a tampered balance: %s", r)
	}
	for _, c := range body.Checks {
		if c.Name == "balances_match_ledger" {
			if c.OK || !strings.Contains(string(c.Detail), "1000000") {
				t.Errorf("balances_match_ledger = %v %s", c.OK, c.Detail)
			}
			return
		}
	}
	t.Error("no balances_match_ledger check")
}
