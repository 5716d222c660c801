package main

// The console's Creators screens in a browser, with the creator program on:
// a creator made in the form, a code added, a player's purchase under the
// code through the API, and the earnings, statement, CSV export and payout
// as the screens show them, checked against what the API says.

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/coinop/coinop/creators"
)

// addKey creates an admin key holding roles, under the name name.
func (e *e2e) addKey(t *testing.T, name string, roles ...string) {
	t.Helper()
	var out struct {
		Secret string `json:"secret"`
	}
	body, _ := json.Marshal(map[string]any{"name": name, "roles": roles})
	if status, resp := e.call(t, e2eAdminToken, "POST", "/admin/v1/keys", "application/json", body, &out); status != http.StatusCreated {
		t.Fatalf("create key %s: %d %s", name, status, resp)
	}
	e.keys[name] = out.Secret
}

// fanBuysStarter has player support the creator code and buy the 50-gem
// starter pack through the player API, and returns the purchase's ledger
// transaction id as support's ledger shows it.
func (e *e2e) fanBuysStarter(t *testing.T, player, code string) int64 {
	t.Helper()
	token, err := playerToken(e2eJWTSecret, player, "", "", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var pc struct {
		Active bool `json:"active"`
	}
	if status, resp := e.call(t, token, "PUT", "/v1/creator-code", "application/json", []byte(fmt.Sprintf(`{"code":%q}`, code)), &pc); status != http.StatusOK || !pc.Active {
		t.Fatalf("PUT /v1/creator-code %s: %d %s", code, status, resp)
	}
	grant := func(path, key, body string) {
		t.Helper()
		req, _ := http.NewRequest("POST", e.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.keys["support"])
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	grant("/admin/v1/players/"+player+"/grants", player+"-gems", `{"reason":"creators e2e","currencies":{"gems":100}}`)
	req, _ := http.NewRequest("POST", e.base+"/v1/purchases",
		strings.NewReader(`{"item_id":"starter","quantity":1,"price":{"currency":"gems","amount":50}}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", player+"-starter")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/purchases: %d", resp.StatusCode)
	}
	var ledger struct {
		Transactions []struct {
			ID   int64  `json:"id"`
			Kind string `json:"kind"`
		} `json:"transactions"`
	}
	e.call(t, e.keys["support"], "GET", "/admin/v1/players/"+player+"/ledger", "", nil, &ledger)
	for _, tx := range ledger.Transactions {
		if tx.Kind == "purchase" {
			return tx.ID
		}
	}
	t.Fatalf("%s's ledger has no purchase: %+v", player, ledger)
	return 0
}

// gemEarnings is what the API says the creator has earned in gems.
func (e *e2e) gemEarnings(t *testing.T, creator string) creators.Earning {
	t.Helper()
	var out struct {
		Earnings []creators.Earning `json:"earnings"`
	}
	if status, resp := e.call(t, e.keys["support"], "GET", "/admin/v1/creators/"+creator+"/earnings", "", nil, &out); status != http.StatusOK {
		t.Fatalf("earnings of %s: %d %s", creator, status, resp)
	}
	for _, es := range out.Earnings {
		if es.Currency == "gems" {
			return es
		}
	}
	t.Fatalf("%s has no gem earnings: %+v", creator, out)
	return creators.Earning{}
}

// earningsRow reads the gems row of the earnings table by column.
func (tb *tab) earningsRow() map[string]string {
	tb.t.Helper()
	tb.run(chromedp.WaitVisible(css(`#earnings-table tr[data-currency=gems]`)))
	cells := eval[[]string](tb, `[...document.querySelectorAll('#earnings-table tr[data-currency=gems] td')].map((td) => td.textContent)`)
	heads := eval[[]string](tb, `[...document.querySelectorAll('#earnings-table th')].map((th) => th.textContent)`)
	if len(cells) != len(heads) {
		tb.t.Fatalf("earnings row %q under %q", cells, heads)
	}
	row := map[string]string{}
	for i, hd := range heads {
		row[hd] = cells[i]
	}
	return row
}

// download clicks sel and returns the file the browser saved and the name
// the page gave it.
func (tb *tab) download(sel string) (name string, body []byte) {
	tb.t.Helper()
	dir := tb.t.TempDir()
	begins := chromedp.Events(tb.ctx, browser.DownloadWillBegin)
	progress := chromedp.Events(tb.ctx, browser.DownloadProgress)
	tb.run(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true),
		})
		return err
	}), chromedp.Click(css(sel)))
	var guid string
	for ev, err := range begins {
		if err != nil {
			tb.t.Fatalf("browser: no download began: %v", err)
		}
		guid, name = ev.GUID, ev.SuggestedFilename
		break
	}
	for ev, err := range progress {
		if err != nil {
			tb.t.Fatalf("browser: download %s did not finish: %v", name, err)
		}
		if ev.GUID != guid {
			continue
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			tb.t.Fatalf("browser: download %s canceled", name)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			break
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, guid))
	if err != nil {
		tb.t.Fatal(err)
	}
	return name, b
}

// TestConsoleCreatorsInABrowser: support makes a creator in the console,
// a fan buys under its code, and the screens show the API's figures. With
// the default 30-day hold the credit is pending and a payout pays nothing;
// with no hold and a minimum of 3 gems, the payout waits for the minimum,
// then pays once.
func TestConsoleCreatorsInABrowser(t *testing.T) {
	held := newE2EWith(t, map[string]string{"COINOP_CREATOR_PROGRAM": "true"})
	held.addKey(t, "cashier", "support", "admin")

	t.Run("support adds a creator and a code in the console, and sees the pending share of a purchase, its statement line and CSV", func(t *testing.T) {
		e := held
		tb := e.newTab(t, "status of 409")
		tb.signIn("cashier")
		tb.open("#/creators", `#new-creator input[name=creator_id]`)
		if got := tb.text(`#creators`); !strings.Contains(got, "No creators yet") {
			t.Errorf("empty creators list = %q", got)
		}
		tb.run(chromedp.SendKeys(css(`#new-creator input[name=creator_id]`), "ninja"),
			chromedp.SendKeys(css(`#new-creator input[name=display_name]`), "Ninja"),
			chromedp.SendKeys(css(`#new-creator input[name=codes]`), "NINJA"))
		tb.run(chromedp.Click(css(`#new-creator button[name=create]`)),
			chromedp.WaitVisible(css(`#add-code input[name=code]`)), chromedp.WaitVisible(css(`#alert.alert-info`)))
		if got := tb.text(`#alert`); !strings.Contains(got, "Added creator ninja") {
			t.Errorf("alert = %q", got)
		}
		if got := tb.text(`main h1`); got != "Ninja (ninja)" {
			t.Errorf("creator heading = %q", got)
		}
		tb.run(chromedp.SendKeys(css(`#add-code input[name=code]`), "ninja-2026"), chromedp.Click(css(`#add-code button[name=add-code]`)),
			chromedp.WaitVisible(xpath(`//p[@id="creator-codes"]/code[text()="ninja-2026"]`)))
		if got := tb.text(`#creator-codes`); got != "Codes: NINJA ninja-2026" {
			t.Errorf("codes = %q", got)
		}
		var api struct {
			Codes []string `json:"codes"`
		}
		e.call(t, e.keys["support"], "GET", "/admin/v1/creators/ninja", "", nil, &api)
		if !slices.Equal(api.Codes, []string{"NINJA", "ninja-2026"}) {
			t.Errorf("the API says the codes are %q", api.Codes)
		}

		// A code taken in another letter case is refused with the server's reason.
		tb.run(chromedp.SendKeys(css(`#add-code input[name=code]`), "Ninja"), chromedp.Click(css(`#add-code button[name=add-code]`)),
			chromedp.WaitVisible(css(`#alert.alert-error .alert-detail`)))
		if got := tb.text(`#alert`); !strings.Contains(got, "belongs to a creator already") || !strings.Contains(got, "creator_code_taken") {
			t.Errorf("taken code alert = %q", got)
		}

		txID := e.fanBuysStarter(t, "fan-1", "NINJA-2026")
		want := e.gemEarnings(t, "ninja")
		if want.PendingMicro != 2_500_000 || want.Available != 0 || want.EarnedMicro != 2_500_000 {
			t.Fatalf("the API's earnings after 5%% of 50 gems under a 30-day hold: %+v", want)
		}

		tb.open("#/creators", `#creators-table tr[data-creator=ninja]`)
		if got := tb.text(`#creators-table tr[data-creator=ninja]`); !strings.Contains(got, "Ninja") || !strings.Contains(got, "NINJA, ninja-2026") ||
			!strings.Contains(got, "active") {
			t.Errorf("list row = %q", got)
		}
		tb.run(chromedp.Click(css(`#creators-table a[href="#/creators/ninja"]`)), chromedp.WaitVisible(css(`#statement-table`)))
		row := tb.earningsRow()
		for col, v := range map[string]string{
			"Pending": creators.FormatMicro(want.PendingMicro), "Available": strconv.FormatInt(want.Available, 10),
			"Carried": creators.FormatMicro(want.RemainderMicro), "Paid": strconv.FormatInt(want.Paid, 10),
			"Debt": creators.FormatMicro(want.DebtMicro), "Earned": creators.FormatMicro(want.EarnedMicro),
		} {
			if row[col] != v {
				t.Errorf("earnings %s = %q, the API says %q", col, row[col], v)
			}
		}
		if row["Pending"] != "2.5" {
			t.Errorf("pending = %q, want 2.5", row["Pending"])
		}

		line := tb.text(`#statement-table tbody tr`)
		for _, want := range []string{"code", "gems", "2.5", fmt.Sprintf("purchase #%d", txID), "fan-1"} {
			if !strings.Contains(line, want) {
				t.Errorf("statement line %q lacks %q", line, want)
			}
		}
		if rows := eval[int](tb, `document.querySelectorAll('#statement-table tbody tr').length`); rows != 1 {
			t.Errorf("the statement shows %d lines, want 1", rows)
		}
		tb.screenshot("creator")

		name, body := tb.download(`#statement button[name=csv]`)
		if !strings.HasPrefix(name, "ninja-") || !strings.HasSuffix(name, ".csv") {
			t.Errorf("the CSV is named %q", name)
		}
		records, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
		if err != nil || len(records) != 2 {
			t.Fatalf("CSV: %v\n%s", err, body)
		}
		if !slices.Equal(records[0], creators.CSVHeader) {
			t.Errorf("CSV header = %q", records[0])
		}
		got := map[string]string{}
		for i, col := range records[0] {
			got[col] = records[1][i]
		}
		for col, v := range map[string]string{"creator_id": "ninja", "kind": "code", "currency": "gems", "amount": "2.5", "micro": "2500000",
			"ledger_transaction_id": strconv.FormatInt(txID, 10), "ledger_kind": "purchase", "player_id": "fan-1"} {
			if got[col] != v {
				t.Errorf("CSV %s = %q, want %q", col, got[col], v)
			}
		}

		// A period in whole UTC days, both included: the day of the line
		// shows it (and exports it), the day before shows none.
		var st struct {
			Lines []struct {
				CreatedAt time.Time `json:"created_at"`
			} `json:"lines"`
		}
		e.call(t, e.keys["support"], "GET", "/admin/v1/creators/ninja/statement", "", nil, &st)
		if len(st.Lines) != 1 {
			t.Fatalf("the API's statement has %d lines, want 1", len(st.Lines))
		}
		day := st.Lines[0].CreatedAt.UTC()
		for _, c := range []struct {
			day   time.Time
			lines int
		}{{day.AddDate(0, 0, -1), 0}, {day, 1}} {
			d := c.day.Format("2006-01-02")
			tb.setValue(`#statement-period input[name=from]`, d)
			tb.setValue(`#statement-period input[name=to]`, d)
			tb.run(chromedp.Click(css(`#statement-period button[name=period]`)),
				chromedp.WaitVisible(xpath(fmt.Sprintf(`//section[@id="statement"]/h2[contains(., "%s 00:00:00Z to ")]`, d))))
			if got := eval[int](tb, `document.querySelectorAll('#statement-table tbody tr').length`); got != c.lines {
				t.Errorf("the statement of %s shows %d lines, want %d", d, got, c.lines)
			}
			if c.lines == 0 && !strings.Contains(tb.text(`#statement`), "No lines in this period.") {
				t.Errorf("the statement of %s says %q", d, tb.text(`#statement`))
			}
		}
		if _, body := tb.download(`#statement button[name=csv]`); strings.Count(string(body), "\n") != 2 {
			t.Errorf("the CSV of %s is\n%s", day.Format("2006-01-02"), body)
		}

		// Nothing is past its hold: the payout is refused and nothing is paid.
		tb.run(chromedp.Click(css(`#payout button[name=payout]`)), chromedp.WaitVisible(css(`#payout-result p.error`)))
		if got := tb.text(`#payout-result`); !strings.Contains(got, "No currency's available earnings reach the payout minimum") ||
			!strings.Contains(got, "Still in the hold, not yet available: 2.5 gems.") {
			t.Errorf("payout under the hold = %q", got)
		}
		if row := tb.earningsRow(); row["Paid"] != "0" || row["Pending"] != "2.5" {
			t.Errorf("after a refused payout the earnings are %v", row)
		}
		if e.gemEarnings(t, "ninja").Paid != 0 {
			t.Errorf("a payout under the hold paid")
		}
	})

	t.Run("with no hold, the payout waits for the minimum, then pays once and shows the paid figure", func(t *testing.T) {
		e := newE2EWith(t, map[string]string{"COINOP_CREATOR_PROGRAM": "true", "COINOP_CREATOR_HOLD": "0s", "COINOP_CREATOR_PAYOUT_MIN": "3"})
		e.addKey(t, "cashier", "support", "admin")
		body := []byte(`{"creator_id":"ninja","display_name":"Ninja","codes":["NINJA"]}`)
		if status, resp := e.call(t, e.keys["support"], "POST", "/admin/v1/creators", "application/json", body, nil); status != http.StatusCreated {
			t.Fatalf("create the creator: %d %s", status, resp)
		}
		e.fanBuysStarter(t, "fan-1", "ninja")

		tb := e.newTab(t, "status of 409")
		tb.signIn("cashier")
		tb.open("#/creators/ninja", `#payout button[name=payout]`)
		if row := tb.earningsRow(); row["Available"] != "2" || row["Carried"] != "0.5" || row["Pending"] != "0" {
			t.Errorf("5%% of 50 gems with no hold shows %v, want 2 available and 0.5 carried", row)
		}
		tb.run(chromedp.Click(css(`#payout button[name=payout]`)), chromedp.WaitVisible(css(`#payout-result p.error`)))
		if got := tb.text(`#payout-result`); !strings.Contains(got, "reach the payout minimum") || strings.Contains(got, "hold") {
			t.Errorf("payout below the minimum = %q", got)
		}

		// A second fan's purchase brings the share to 5 gems, over the minimum.
		e.fanBuysStarter(t, "fan-2", "NINJA")
		tb.open("#/creators", `#creators-table`)
		tb.open("#/creators/ninja", `#payout button[name=payout]`)
		if row := tb.earningsRow(); row["Available"] != "5" || row["Carried"] != "0" {
			t.Errorf("after two purchases the earnings are %v, want 5 available", row)
		}
		tb.run(doubleClick(`#payout button[name=payout]`), chromedp.WaitVisible(css(`#payout-result p.ok`)),
			chromedp.WaitVisible(xpath(`//table[@id="statement-table"]//td[starts-with(., "payout #")]`)))
		if got := tb.text(`#payout-result`); !strings.Contains(got, "Recorded payout #") || !strings.Contains(got, "5 gems") {
			t.Errorf("payout result = %q", got)
		}
		// The earnings redraw beside the statement: wait for the paid column.
		tb.run(chromedp.WaitVisible(xpath(`//table[@id="earnings-table"]//tr[@data-currency="gems"]/td[5][text()="5"]`)))
		want := e.gemEarnings(t, "ninja")
		if want.Paid != 5 || want.Available != 0 {
			t.Errorf("the API's earnings after the payout: %+v", want)
		}
		if row := tb.earningsRow(); row["Paid"] != strconv.FormatInt(want.Paid, 10) || row["Available"] != "0" {
			t.Errorf("after the payout the earnings show %v, the API says %+v", row, want)
		}
		payouts := eval[[]string](tb, `[...document.querySelectorAll('#statement-table tbody tr')].map((tr) => tr.textContent).filter((s) => s.includes('payout #'))`)
		if len(payouts) != 1 || !strings.Contains(payouts[0], "-5") {
			t.Errorf("payout lines after a double click = %q, want one of -5", payouts)
		}
		tb.run(chromedp.ScrollIntoView(css(`#statement`)))
		tb.screenshot("creator-payout")
	})

	t.Run("the catalog form keeps a creator-made item's creator and share, a player-consumable flag and a tippable currency", func(t *testing.T) {
		e := held
		body := []byte(`{"creator_id":"smith","display_name":"Smith"}`)
		if status, resp := e.call(t, e.keys["support"], "POST", "/admin/v1/creators", "application/json", body, nil); status != http.StatusCreated {
			t.Fatalf("create the creator: %d %s", status, resp)
		}
		entry := func(path string) map[string]any {
			t.Helper()
			var v map[string]any
			if status, resp := e.call(t, e.keys["viewer"], "GET", "/admin/v1/catalog/draft/"+path, "", nil, &v); status != http.StatusOK {
				t.Fatalf("GET draft %s: %d %s", path, status, resp)
			}
			return v
		}
		put := func(path string, v map[string]any) {
			t.Helper()
			b, _ := json.Marshal(v)
			if status, resp := e.call(t, e.keys["designer"], "PUT", "/admin/v1/catalog/draft/"+path, "application/json", b, nil); status != http.StatusOK {
				t.Fatalf("PUT draft %s: %d %s", path, status, resp)
			}
		}
		shield := entry("items/shield")
		shield["creator_id"], shield["creator_share_ppm"] = "smith", 300000
		put("items/shield", shield)
		potion := entry("items/potion")
		potion["player_consumable"] = true
		put("items/potion", potion)
		gems := entry("currencies/gems")
		gems["tippable"] = true
		put("currencies/gems", gems)

		tb := e.newTab(t)
		tb.signIn("designer")
		// Saved unchanged, each entry is what it was, field for field.
		for _, path := range []string{"items/shield", "items/potion", "currencies/gems"} {
			before := entry(path)
			// The heading names the entry: the previous entry's form, still
			// there until the hash change is handled, has the same buttons.
			sec, id, _ := strings.Cut(path, "/")
			heading := map[string]string{"items": "Item ", "currencies": "Currency "}[sec] + id
			eval[string](tb, fmt.Sprintf(`location.hash = %q`, "#/catalog/"+path))
			tb.run(chromedp.WaitVisible(xpath(fmt.Sprintf(`//main//h1[text()=%q]`, heading))),
				chromedp.WaitVisible(css(`.entity-form button[name=save]`)))
			tb.run(chromedp.Click(css(`button[name=save]`)), chromedp.WaitVisible(css(`.form-status p.ok`)))
			if after := entry(path); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("saving %s unchanged in the console changed it:\nbefore %v\nafter  %v", path, before, after)
			}
		}
		tb.open("#/catalog/items/shield", `input[name=creator_share_ppm]`)
		if got := eval[string](tb, `document.querySelector('input[name=creator_id]').value`); got != "smith" {
			t.Errorf("the shield's creator field = %q", got)
		}
		tb.setValue(`input[name=creator_share_ppm]`, "1000001")
		tb.run(chromedp.Click(css(`button[name=save]`)), chromedp.WaitVisible(css(`.field.invalid[data-path=creator_share_ppm] .field-error`)))
		if got := tb.text(`.field.invalid .field-error`); !strings.Contains(got, "creator_share_ppm must be 0 to 1000000") {
			t.Errorf("error at the share field = %q", got)
		}
		tb.setValue(`input[name=creator_share_ppm]`, "250000")
		tb.run(chromedp.Click(css(`button[name=save]`)), chromedp.WaitVisible(css(`.form-status p.ok`)))
		if got := entry("items/shield")["creator_share_ppm"]; got != float64(250000) {
			t.Errorf("after the form set the share to 250000 the draft says %v", got)
		}

		// The diff lists the new share apart from the field changes, as it does prices.
		tb.open("#/diff", `#creator-share-changes`)
		if got := tb.text(`#creator-share-changes tbody tr`); !strings.Contains(got, "items/shield") || !strings.Contains(got, "any currency") ||
			!strings.Contains(got, "smith") || !strings.Contains(got, "(none)") || !strings.Contains(got, "25%") {
			t.Errorf("creator share change row = %q", got)
		}
	})

	t.Run("only admin sees the payout, support creates and suspends, and a viewer has no creators screen", func(t *testing.T) {
		e := held
		body := []byte(`{"creator_id":"maker","display_name":"Maker"}`)
		if status, resp := e.call(t, e.keys["support"], "POST", "/admin/v1/creators", "application/json", body, nil); status != http.StatusCreated {
			t.Fatalf("create the creator: %d %s", status, resp)
		}

		support := e.newTab(t)
		support.signIn("support")
		support.open("#/creators/maker", `#add-code button[name=add-code]`)
		if support.exists(`#payout`) || support.exists(`button[name=payout]`) {
			t.Errorf("a support key without admin sees the payout")
		}

		// Suspending takes the creator's code form away; reactivating brings it back.
		support.run(chromedp.Click(css(`#creator button[name=suspend]`)), chromedp.WaitVisible(css(`#creator button[name=activate]`)))
		if got := support.text(`#creator p`); !strings.HasPrefix(got, "Status: suspended.") {
			t.Errorf("after suspending: %q", got)
		}
		if support.exists(`#add-code`) {
			t.Errorf("a suspended creator offers a form to add a code")
		}
		var c struct {
			Status string `json:"status"`
		}
		e.call(t, e.keys["support"], "GET", "/admin/v1/creators/maker", "", nil, &c)
		if c.Status != "suspended" {
			t.Errorf("the API says maker is %q after the console suspended it", c.Status)
		}
		support.open("#/creators", `#creators-table tr[data-creator=maker].revoked`)
		support.open("#/creators/maker", `#creator button[name=activate]`)
		support.run(chromedp.Click(css(`#creator button[name=activate]`)), chromedp.WaitVisible(css(`#add-code button[name=add-code]`)))
		e.call(t, e.keys["support"], "GET", "/admin/v1/creators/maker", "", nil, &c)
		if c.Status != "active" {
			t.Errorf("the API says maker is %q after the console reactivated it", c.Status)
		}
		support.open("#/creators", `#new-creator button[name=create]`)

		viewer := e.newTab(t)
		viewer.signIn("viewer")
		viewer.run(chromedp.WaitVisible(css(`nav a`)))
		if viewer.exists(`nav a[href="#/creators"]`) {
			t.Errorf("a viewer sees the Creators screen in the navigation")
		}
		viewer.open("#/creators/maker", `#main p.error`)
		if got := viewer.text(`#main p.error`); got != "This screen needs a key with the support role." {
			t.Errorf("a viewer opening a creator sees %q", got)
		}
		for _, sel := range []string{`#payout`, `#new-creator`, `#add-code`, `button[name=payout]`, `button[name=create]`} {
			if viewer.exists(sel) {
				t.Errorf("a viewer sees %s", sel)
			}
		}
		viewer.open("#/catalog", `#preview select[name=locale]`)
		viewer.open("#/creators", `#main p.error`)
		if viewer.exists(`#new-creator`) {
			t.Errorf("a viewer sees the new creator form")
		}
	})
}
