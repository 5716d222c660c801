package loadtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The fake's creator program: creators with codes, players' codes, tips,
// and each creator's credits, accrued exactly as the server's rule says (a
// share of spent is spent × share_ppm micro-units).

type fakeCreator struct {
	code  string
	lines []statementLine
}

func (f *fakeCoinop) creatorsOn(w http.ResponseWriter) bool {
	if f.program == nil {
		problem(w, http.StatusNotFound, "creators_disabled")
		return false
	}
	return true
}

// creditLocked journals one credit, with the deliberate fault applied to
// the first.
func (f *fakeCoinop) creditLocked(creator, kind, currency string, spent, micro int64) {
	if f.creditOff != 0 {
		micro += f.creditOff
		f.creditOff = 0
	}
	c := f.creators[creator]
	c.lines = append(c.lines, statementLine{Kind: kind, Currency: currency, Micro: micro, Spent: spent})
}

// codeCreditLocked credits the creator of the player's code its share of a
// purchase or spend.
func (f *fakeCoinop) codeCreditLocked(pid, currency string, spent int64) {
	creator, ok := f.playerCode[pid]
	if f.program == nil || !ok || !f.program.covers(currency) {
		return
	}
	f.creditLocked(creator, "code", currency, spent, spent*f.program.SharePPM)
}

func (f *fakeCoinop) createCreator(w http.ResponseWriter, r *http.Request) {
	if !f.admin(w, r) || !f.creatorsOn(w) {
		return
	}
	var req creatorRequest
	if json.NewDecoder(r.Body).Decode(&req) != nil || req.CreatorID == "" || len(req.Codes) != 1 {
		problem(w, http.StatusBadRequest, "invalid_request")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.creators == nil {
		f.creators, f.playerCode = map[string]*fakeCreator{}, map[string]string{}
	}
	if _, ok := f.creators[req.CreatorID]; ok {
		problem(w, http.StatusConflict, "creator_exists")
		return
	}
	f.creators[req.CreatorID] = &fakeCreator{code: req.Codes[0]}
	writeJSON(w, http.StatusCreated, map[string]any{"creator_id": req.CreatorID, "display_name": req.DisplayName, "status": "active", "codes": req.Codes})
}

func (f *fakeCoinop) setCreatorCode(w http.ResponseWriter, r *http.Request) {
	pid := f.player(w, r)
	if pid == "" || !f.creatorsOn(w) {
		return
	}
	var req struct{ Code string }
	if json.NewDecoder(r.Body).Decode(&req) != nil {
		problem(w, http.StatusBadRequest, "invalid_request")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, c := range f.creators {
		if strings.EqualFold(c.code, req.Code) {
			f.playerCode[pid] = id
			writeJSON(w, http.StatusOK, map[string]any{"player_id": pid, "code": c.code, "creator_id": id, "active": true})
			return
		}
	}
	problem(w, http.StatusUnprocessableEntity, "unknown_creator_code")
}

func (f *fakeCoinop) tip(w http.ResponseWriter, r *http.Request) {
	pid := f.player(w, r)
	if pid == "" || !f.creatorsOn(w) {
		return
	}
	creator := r.PathValue("creator_id")
	key := r.Header.Get("Idempotency-Key")
	var lost bool
	f.idempotent(w, r, pid, "tip", func(body []byte) (int, any) {
		var req TipRequest
		if json.Unmarshal(body, &req) != nil || req.Amount < 1 {
			return rejection(http.StatusBadRequest, "invalid_request")
		}
		if f.creators[creator] == nil {
			return rejection(http.StatusNotFound, "unknown_creator")
		}
		tippable := false
		for _, c := range f.doc.Catalog.Currencies {
			tippable = tippable || c.ID == req.Currency && c.Tippable
		}
		if !tippable {
			return rejection(http.StatusConflict, "not_tippable")
		}
		if f.holdings[pid]["currency:"+req.Currency] < req.Amount {
			return rejection(http.StatusPaymentRequired, "insufficient_funds")
		}
		f.tips++
		id := fmt.Sprintf("tip-%d", f.tips)
		micro := req.Amount * (maxSharePPM - f.program.TipFeePPM)
		f.recordLocked(pid, KindTip, id, map[string]any{"creator_id": creator, "idempotency_key": key},
			move(pid, "creator_tips", "currency", req.Currency, -req.Amount))
		f.creditLocked(creator, "tip", req.Currency, req.Amount, micro)
		lost = f.failTips.Add(-1) >= 0
		return http.StatusCreated, TipResult{TipID: id, CreatorID: creator, Currency: req.Currency, Amount: req.Amount, CreatorCredit: formatMicro(micro)}
	}, func() bool { return lost })
}

func (f *fakeCoinop) creatorEarnings(w http.ResponseWriter, r *http.Request) {
	if !f.admin(w, r) || !f.creatorsOn(w) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.creators[r.PathValue("creator_id")]
	if c == nil {
		problem(w, http.StatusNotFound, "unknown_creator")
		return
	}
	sums := map[string]int64{}
	for _, l := range c.lines {
		sums[l.Currency] += l.Micro
	}
	earnings := []creatorEarning{}
	for _, cur := range sortedKeys(sums) {
		earnings = append(earnings, creatorEarning{Currency: cur, EarnedMicro: sums[cur], PendingMicro: sums[cur]})
	}
	writeJSON(w, http.StatusOK, map[string]any{"creator_id": r.PathValue("creator_id"), "earnings": earnings})
}

func (f *fakeCoinop) creatorStatement(w http.ResponseWriter, r *http.Request) {
	if !f.admin(w, r) || !f.creatorsOn(w) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.creators[r.PathValue("creator_id")]
	if c == nil {
		problem(w, http.StatusNotFound, "unknown_creator")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"creator_id": r.PathValue("creator_id"), "lines": c.lines})
}
