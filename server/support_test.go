package server_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/coinop/coinop/access"
)

func TestSupportSeesAPlayersHoldingsAndDebts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	support := newKey(t, e, "alice", access.RoleSupport)
	r := e.adminAs(t, support, "POST", "/admin/v1/players/p1/grants", `{"reason":"ticket 42","currencies":{"gems":100},"items":{"sword":1}}`,
		"Idempotency-Key", "ticket-42")
	if r.status != http.StatusCreated {
		t.Fatalf("grant: %s", r)
	}
	var h struct {
		PlayerID     string           `json:"player_id"`
		Balances     map[string]int64 `json:"balances"`
		Entitlements []struct {
			ItemID   string `json:"item_id"`
			Quantity int64  `json:"quantity"`
		} `json:"entitlements"`
	}
	e.adminAs(t, support, "GET", "/admin/v1/players/p1/holdings", "").decode(t, &h)
	if h.PlayerID != "p1" || !reflect.DeepEqual(h.Balances, map[string]int64{"gems": 100, "gold": 0}) ||
		len(h.Entitlements) != 1 || h.Entitlements[0].ItemID != "sword" || h.Entitlements[0].Quantity != 1 {
		t.Errorf("holdings = %+v", h)
	}
	r = e.adminAs(t, support, "GET", "/admin/v1/players/p1/debts", "")
	if r.status != http.StatusOK || string(r.body) != `{"player_id":"p1","debts":[]}` {
		t.Errorf("debts: %s", r)
	}
	assertProblem(t, e.adminAs(t, support, "GET", "/admin/v1/players/p1/debts?limit=0", ""), http.StatusBadRequest, "invalid_request")
	assertProblem(t, e.adminAs(t, support, "GET", "/admin/v1/players/"+strings.Repeat("p", 129)+"/holdings", ""), http.StatusBadRequest, "invalid_request")
}

func TestMeSaysWhoTheCallerIs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var me struct {
		Actor string   `json:"actor"`
		Roles []string `json:"roles"`
		Can   []string `json:"can"`
	}
	e.adminAs(t, newKey(t, e, "bob", access.RoleEditor), "GET", "/admin/v1/me", "").decode(t, &me)
	if me.Actor != "key:bob" || !reflect.DeepEqual(me.Roles, []string{"editor"}) || !reflect.DeepEqual(me.Can, []string{"viewer", "editor"}) {
		t.Errorf("me = %+v", me)
	}
	assertProblem(t, e.get(t, "/admin/v1/me", ""), http.StatusUnauthorized, "unauthenticated")
}
