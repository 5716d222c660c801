package main

// End-to-end tests of the web console: a real `coinop serve` (serve's own
// wiring over a fresh database) driven by headless Chromium through the
// DevTools protocol. They wait for conditions, never for fixed times, and
// fail on any console error or uncaught exception in the page.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

const (
	e2eAdminToken = "e2e-admin-token-0123456789abcdef0123456789"
	e2eJWTSecret  = "e2e-secret-0123456789abcdef0123456789"
)

// chromiumPath finds Debian's chromium. A machine without it fails the
// test: a skipped browser test would pass CI without testing the console.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COINOP_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the console's browser tests need Chromium: install the Debian package chromium (apt-get install -y chromium), " +
		"or point COINOP_CHROMIUM at a Chromium binary")
	return ""
}

// e2e is one running server with keys of each kind the scenarios need, and
// a headless browser.
type e2e struct {
	t       *testing.T
	base    string
	browser context.Context
	keys    map[string]string
	shots   string
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	return newE2EWith(t, nil)
}

// newE2EWith is newE2E with serve's settings added to (or overriding) the
// test's own.
func newE2EWith(t *testing.T, settings map[string]string) *e2e {
	t.Helper()
	chromium := chromiumPath(t)
	all := map[string]string{"COINOP_ADMIN_TOKEN": e2eAdminToken, "COINOP_JWT_SECRET": e2eJWTSecret}
	for k, v := range settings {
		all[k] = v
	}
	_, base, _, _ := startServe(t, all)
	e := &e2e{t: t, base: base, keys: map[string]string{}}
	doc, err := os.ReadFile(filepath.Join("..", "..", "examples", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if status, body := e.call(t, e2eAdminToken, "PUT", "/admin/v1/catalog?note=e2e", "application/yaml", doc, nil); status != http.StatusCreated {
		t.Fatalf("publish the example catalog: %d %s", status, body)
	}
	for name, roles := range map[string][]string{
		"designer": {"editor", "publisher"},
		"editor2":  {"editor"},
		"viewer":   {"viewer"},
		"support":  {"support"},
	} {
		var out struct {
			Secret string `json:"secret"`
		}
		body, _ := json.Marshal(map[string]any{"name": name, "roles": roles})
		if status, resp := e.call(t, e2eAdminToken, "POST", "/admin/v1/keys", "application/json", body, &out); status != http.StatusCreated {
			t.Fatalf("create key %s: %d %s", name, status, resp)
		}
		e.keys[name] = out.Secret
	}

	// Screenshots go to docs/console only when asked, so `make test` never
	// changes the tree.
	e.shots = t.TempDir()
	if os.Getenv("COINOP_UPDATE_SCREENSHOTS") == "1" {
		e.shots = filepath.Join("..", "..", "docs", "console")
		if err := os.MkdirAll(e.shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // CI runs as root, where the sandbox cannot start
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	// Start the browser now, so a broken install fails here, plainly.
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	e.browser = browser
	return e
}

// call sends an API request with a bearer token and decodes JSON into out.
func (e *e2e) call(t *testing.T, token, method, path, contentType string, body []byte, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

// tab is one browser tab (its own sessionStorage, so its own sign-in).
type tab struct {
	e   *e2e
	t   *testing.T
	ctx context.Context

	mu sync.Mutex
	// problems are console errors and exceptions; expected lists the
	// network errors a scenario provokes on purpose ("status of 403").
	problems []string
	expected []string
}

func (e *e2e) newTab(t *testing.T, expected ...string) *tab {
	t.Helper()
	tabCtx, cancel := chromedp.NewContext(e.browser)
	// The first action opens the tab; a timeout on that context would be
	// the tab's lifetime, so the timeout goes on a context derived after.
	if err := chromedp.Do(tabCtx); err != nil {
		cancel()
		t.Fatalf("open a tab: %v", err)
	}
	// It bounds the tab's whole scenario, not one step: on a loaded 2-core
	// machine (make test runs packages side by side) a dozen steps have
	// taken over 30 s.
	ctx, cancelTimeout := context.WithTimeout(tabCtx, 90*time.Second)
	tb := &tab{e: e, t: t, ctx: ctx, expected: expected}
	// Listen sees each event before the reply to any later command, so
	// after the last action every message the page wrote has been seen.
	err := chromedp.Listen(tabCtx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			switch ev.Type {
			case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeWarning, runtime.ConsoleAPICalledTypeAssert:
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, strings.TrimSpace(string(a.Value)+" "+a.Description))
				}
				msg = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			msg = "uncaught: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			en := ev.Entry
			if en.Level == cdplog.EntryLevelError || en.Level == cdplog.EntryLevelWarning {
				msg = fmt.Sprintf("%s %s: %s %s", en.Source, en.Level, en.Text, en.URL)
				if en.Source == cdplog.EntrySourceNetwork && tb.isExpected(en.Text) {
					msg = ""
				}
			}
		}
		if msg != "" {
			tb.mu.Lock()
			tb.problems = append(tb.problems, msg)
			tb.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// One more round trip, so every earlier message has arrived.
		_, _ = chromedp.Run(tabCtx, chromedp.Evaluate[bool](`true`))
		tb.mu.Lock()
		for _, p := range tb.problems {
			t.Errorf("browser: %s", p)
		}
		tb.mu.Unlock()
		cancelTimeout()
		cancel()
	})
	return tb
}

func (tb *tab) isExpected(text string) bool {
	for _, want := range tb.expected {
		if strings.Contains(text, want) {
			return true
		}
	}
	return false
}

func (tb *tab) run(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, steps...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

func eval[T any](tb *tab, expr string, opts ...chromedp.EvaluateOption) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		tb.t.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// css and xpath name the two kinds of selector the tests use.
func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

func xpath(q string) chromedp.Search { return chromedp.Search(q) }

// signIn opens the console and signs in with the named key.
func (tb *tab) signIn(who string) {
	tb.t.Helper()
	tb.run(
		chromedp.Navigate(tb.e.base+"/console"),
		chromedp.WaitVisible(css(`input[name=key]`)),
		chromedp.SendKeys(css(`input[name=key]`), tb.e.keys[who]))
	tb.submit(`input[name=key]`)
	tb.run(chromedp.WaitVisible(css(`#who .actor`)))
	if actor := tb.text(`#who .actor`); actor != "key:"+who {
		tb.t.Fatalf("signed in as %q, want key:%s", actor, who)
	}
}

// submit submits the form of the control sel as pressing Enter does:
// requestSubmit fires the submit event the page handles (form.submit(),
// which chromedp.Submit uses, would bypass it).
func (tb *tab) submit(sel string) {
	tb.t.Helper()
	eval[bool](tb, fmt.Sprintf(`(() => { document.querySelector(%q).form.requestSubmit(); return true; })()`, sel))
}

// open goes to a screen by its hash and waits for sel.
func (tb *tab) open(hash, sel string) {
	tb.t.Helper()
	eval[string](tb, fmt.Sprintf(`location.hash = %q`, hash))
	tb.run(chromedp.WaitVisible(css(sel)))
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Text(css(sel), chromedp.NodeVisible))
	if err != nil {
		tb.t.Fatalf("browser: text of %s: %v", sel, err)
	}
	return s
}

func (tb *tab) exists(sel string) bool {
	tb.t.Helper()
	return eval[int](tb, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)) > 0
}

// setValue sets a control's value as typing would, firing input and change.
func (tb *tab) setValue(sel, value string) {
	tb.t.Helper()
	eval[bool](tb, fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.value = %q;
		el.dispatchEvent(new Event('input', {bubbles: true})); el.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`, sel, value))
}

// screenshot saves the viewport as name.png, after checking the screen is
// usable from the keyboard and by a screen reader: every visible link,
// button and form control has a name (its text or label) and is in the tab
// order.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	unnamed := eval[[]string](tb, `(() => {
		const bad = [];
		for (const el of document.querySelectorAll('a[href], button, input, select, textarea')) {
			if (el.offsetParent === null) continue; // not displayed
			const labels = el.labels ? [...el.labels].map((l) => l.textContent).join(' ') : '';
			const own = el.tagName === 'A' || el.tagName === 'BUTTON' ? el.textContent : '';
			if (!(labels + own + (el.getAttribute('aria-label') || '')).trim()) bad.push('unnamed: ' + el.outerHTML.slice(0, 100));
			if (el.tabIndex < 0) bad.push('not focusable: ' + el.outerHTML.slice(0, 100));
		}
		return bad;
	})()`)
	for _, u := range unnamed {
		tb.t.Errorf("%s screen: %s", name, u)
	}
	png, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("browser: screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(tb.e.shots, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// doubleClick presses and releases the mouse twice on sel's centre, as a
// person double-clicking does: two clicks, the second with clickCount 2.
func doubleClick(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := chromedp.WaitVisible(css(sel))(ctx, t); err != nil {
			return err
		}
		box, err := chromedp.Evaluate[[]float64](fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect();
			return [r.left + r.width / 2, r.top + r.height / 2]; })()`, sel))(ctx, t)
		if err != nil {
			return err
		}
		for count := 1; count <= 2; count++ {
			for _, typ := range []input.DispatchMouseEventType{chromedp.MousePressed, chromedp.MouseReleased} {
				if _, err := chromedp.MouseEvent(typ, box[0], box[1], chromedp.ButtonLeft, chromedp.ClickCount(count))(ctx, t); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

type catalogDoc struct {
	Items []struct {
		ID     string `json:"id"`
		Prices []struct {
			Currency string `json:"currency"`
			Amount   int64  `json:"amount"`
		} `json:"prices"`
	} `json:"items"`
}

// price reads an item's price from the live catalog (token "") or from the
// draft (with a viewer's token).
func (e *e2e) price(t *testing.T, token, item, currency string) int64 {
	t.Helper()
	path := "/v1/catalog"
	if token != "" {
		path = "/admin/v1/catalog/draft"
	}
	req, _ := http.NewRequest("GET", e.base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var live struct {
		Catalog catalogDoc `json:"catalog"`
	}
	doc := &live.Catalog
	if token != "" {
		err = json.Unmarshal(b, doc)
	} else {
		err = json.Unmarshal(b, &live)
	}
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET %s: %d %v %s", path, resp.StatusCode, err, b)
	}
	for _, it := range doc.Items {
		if it.ID == item {
			for _, p := range it.Prices {
				if p.Currency == currency {
					return p.Amount
				}
			}
		}
	}
	t.Fatalf("GET %s: no %s price for %s", path, currency, item)
	return 0
}

// TestConsoleInABrowser runs the console's scenarios one after another on
// one server: each builds on the catalog the previous one published.
func TestConsoleInABrowser(t *testing.T) {
	e := newE2E(t)

	t.Run("a designer changes a price in the form, sees the diff, publishes, and the catalog serves it", func(t *testing.T) {
		tb := e.newTab(t)
		tb.signIn("designer")
		tb.open("#/catalog", `section[data-section=items] a[href="#/catalog/items/sword"]`)
		tb.screenshot("catalog")
		tb.run(chromedp.Click(css(`a[href="#/catalog/items/sword"]`)), chromedp.WaitVisible(css(`.entity-form input[name="prices[0].amount"]`)))

		// The server's validation message appears at the field.
		tb.setValue(`input[name="prices[0].amount"]`, "-5")
		tb.run(chromedp.Click(css(`button[name=save]`)), chromedp.WaitVisible(css(`.field.invalid .field-error`)))
		if got := tb.text(`.field.invalid .field-error`); got != "amount must be greater than 0" {
			t.Errorf("error at the amount field = %q", got)
		}
		if !tb.exists(`.field.invalid[data-path="prices[0].amount"]`) {
			t.Errorf("the problem is not shown at prices[0].amount")
		}
		tb.screenshot("item-form")

		tb.setValue(`input[name="prices[0].amount"]`, "450")
		tb.run(chromedp.Click(css(`button[name=save]`)), chromedp.WaitVisible(css(`.form-status p.ok`)))
		if tb.exists(`.field.invalid`) {
			t.Errorf("a field is still marked invalid after a valid save")
		}

		tb.run(chromedp.Click(css(`.form-status a[href="#/diff"]`)), chromedp.WaitVisible(css(`#price-changes`)))
		row := tb.text(`#price-changes tbody tr`)
		if !strings.Contains(row, "items/sword") || !strings.Contains(row, "500") || !strings.Contains(row, "450") || !strings.Contains(row, "-10.0%") {
			t.Errorf("price change row = %q", row)
		}
		if !tb.exists(`#price-changes tr.down`) || !tb.exists(`tr.price-field`) {
			t.Errorf("the price change is not highlighted")
		}
		tb.screenshot("diff")
		tb.run(chromedp.SendKeys(css(`input[name=note]`), "sword sale"), chromedp.Click(css(`button[name=publish]`)),
			chromedp.WaitVisible(css(`#publish-result p.ok`)))
		if got := tb.text(`#publish-result p.ok`); !strings.Contains(got, "Published version 2 (live)") {
			t.Errorf("publish result = %q", got)
		}
		if got := e.price(t, "", "sword", "gold"); got != 450 {
			t.Errorf("GET /v1/catalog: sword costs %d gold, want 450", got)
		}
		tb.open("#/versions", `table tbody tr`)
		if got := tb.text(`table tbody tr`); !strings.Contains(got, "sword sale") || !strings.Contains(got, "live") {
			t.Errorf("newest version row = %q", got)
		}
		if !tb.exists(`button[name=rollback-1]`) {
			t.Errorf("a publisher sees no rollback button for version 1")
		}
		tb.screenshot("versions")
	})

	t.Run("a viewer sees no publish button and a forced publish shows the 403 reason", func(t *testing.T) {
		// A draft change, so there is something a publisher could publish.
		body := []byte(`{"name":"Health Potion","kind":"consumable","max_per_player":99,"prices":[{"currency":"gold","amount":90}]}`)
		if status, resp := e.call(t, e.keys["editor2"], "PUT", "/admin/v1/catalog/draft/items/potion", "application/json", body, nil); status != http.StatusOK {
			t.Fatalf("edit the draft: %d %s", status, resp)
		}
		tb := e.newTab(t, "status of 403")
		tb.signIn("viewer")
		tb.open("#/diff", `#changes`)
		if tb.exists(`button[name=publish]`) || tb.exists(`#publish-form`) {
			t.Errorf("a viewer sees the publish form")
		}
		tb.open("#/catalog/items/potion", `.entity-form input[name="prices[0].amount"]`)
		if tb.exists(`button[name=save]:not([hidden])`) || tb.exists(`button[name=delete]:not([hidden])`) {
			t.Errorf("a viewer sees save or delete")
		}
		out := eval[string](tb, `import('/console/api.js').then((m) => m.api('POST', '/admin/v1/catalog/publish', {body: {note: 'forced'}}))
			.then(() => 'published', (e) => 'refused ' + e.status)`, chromedp.EvalAwaitPromise)
		if out != "refused 403" {
			t.Errorf("forced publish: %s", out)
		}
		tb.run(chromedp.WaitVisible(css(`#alert .alert-detail`)))
		if got := tb.text(`#alert`); !strings.Contains(got, "Refused") || !strings.Contains(got, "This route needs a key with the publisher role.") {
			t.Errorf("alert = %q", got)
		}
		if got := e.price(t, "", "potion", "gold"); got != 100 {
			t.Errorf("the forced publish went through: potion costs %d", got)
		}
	})

	t.Run("two editors race on one item and the second sees the conflict", func(t *testing.T) {
		first, second := e.newTab(t), e.newTab(t, "status of 412")
		first.signIn("designer")
		second.signIn("editor2")
		for _, tb := range []*tab{first, second} {
			tb.open("#/catalog/items/potion", `.entity-form input[name="prices[0].amount"]`)
		}
		first.setValue(`input[name="prices[0].amount"]`, "80")
		first.run(chromedp.Click(css(`button[name=save]`)), chromedp.WaitVisible(css(`.form-status p.ok`)))
		second.setValue(`input[name="prices[0].amount"]`, "70")
		second.run(chromedp.Click(css(`button[name=save]`)), chromedp.WaitVisible(css(`.conflict`)))
		if got := second.text(`.conflict`); !strings.Contains(got, "Someone else changed this") || !strings.Contains(got, "Reload") || !strings.Contains(got, "Overwrite") {
			t.Errorf("conflict = %q", got)
		}
		second.screenshot("conflict")
		second.run(chromedp.Click(css(`button[name=overwrite]`)), chromedp.WaitVisible(css(`.form-status p.ok`)))
		if got := e.price(t, e.keys["viewer"], "potion", "gold"); got != 70 {
			t.Errorf("after overwrite the draft's potion costs %d, want 70", got)
		}
	})

	t.Run("support looks up a player and grants 100 gems once despite a double click", func(t *testing.T) {
		tb := e.newTab(t)
		tb.signIn("support")
		tb.open("#/players", `input[name=player_id]`)
		tb.run(chromedp.SendKeys(css(`input[name=player_id]`), "player-e2e"))
		tb.submit(`input[name=player_id]`)
		tb.run(chromedp.WaitVisible(css(`#grant button[name=grant]`)), chromedp.WaitVisible(css(`#balances`)))
		tb.setValue(`select[name=asset]`, "currency:gems")
		tb.run(chromedp.SendKeys(css(`input[name=amount]`), "100"), chromedp.SendKeys(css(`input[name=reason]`), "ticket 7: gems not delivered"),
			doubleClick(`#grant button[name=grant]`),
			chromedp.WaitVisible(css(`#grant-result p.ok`)),
			chromedp.WaitVisible(xpath(`//table[@id="ledger-table"]//td[contains(., "+100 gems")]`)),
			chromedp.WaitVisible(xpath(`//table[@id="balances"]//tr[@data-currency="gems"]/td[text()="100"]`)))
		tb.screenshot("player")
		var ledger struct {
			Transactions []struct {
				Kind string `json:"kind"`
			} `json:"transactions"`
		}
		e.call(t, e.keys["support"], "GET", "/admin/v1/players/player-e2e/ledger", "", nil, &ledger)
		if len(ledger.Transactions) != 1 {
			t.Errorf("ledger has %d transactions after a double click, want 1: %+v", len(ledger.Transactions), ledger)
		}
		rows := eval[int](tb, `document.querySelectorAll('#ledger-table tbody tr').length`)
		if rows != 1 {
			t.Errorf("the ledger page shows %d rows, want 1", rows)
		}
		var h struct {
			Balances map[string]int64 `json:"balances"`
		}
		e.call(t, e.keys["support"], "GET", "/admin/v1/players/player-e2e/holdings", "", nil, &h)
		if h.Balances["gems"] != 100 {
			t.Errorf("gems balance = %d, want 100", h.Balances["gems"])
		}

		tb.open("#/audit", `#audit-results table`)
		if got := tb.text(`#audit-results tbody`); !strings.Contains(got, "key:designer") {
			t.Errorf("the audit log does not show the designer's publish: %q", got)
		}
		tb.setValue(`input[name=actor]`, "key:editor2")
		tb.submit(`input[name=actor]`)
		tb.run(chromedp.WaitNotPresent(xpath(`//div[@id="audit-results"]//td[text()="key:designer"]`)))
		tb.screenshot("audit-log")
		tb.open("#/inbox", `#inbox-results`)
	})

	t.Run("with the creator program off, the Creators screen says how to start it", func(t *testing.T) {
		tb := e.newTab(t, "status of 404")
		tb.signIn("support")
		tb.open("#/creators", `#creators-disabled`)
		if got := tb.text(`#creators-disabled`); !strings.Contains(got, "COINOP_CREATOR_PROGRAM=true") {
			t.Errorf("creators with the program off = %q", got)
		}
		if tb.exists(`#new-creator`) || eval[bool](tb, `!document.getElementById('alert').hidden`) {
			t.Errorf("with the program off the screen offers a form or shows an error")
		}
	})

	t.Run("the live preview shows the localized name for locale=fr", func(t *testing.T) {
		tb := e.newTab(t)
		tb.signIn("viewer")
		tb.open("#/catalog", `#preview select[name=locale]`)
		tb.run(chromedp.WaitVisible(css(`#preview-table`)))
		tb.run(chromedp.WaitVisible(xpath(`//table[@id="preview-table"]//td[text()="Oak Shield"]`)))
		tb.setValue(`#preview select[name=locale]`, "fr")
		tb.run(chromedp.WaitVisible(xpath(`//table[@id="preview-table"]//tr[@data-id="shield"]/td[text()="Bouclier de chêne"]`)))
		if got := tb.text(`#preview div > p.muted`); !strings.Contains(got, "strings in fr") {
			t.Errorf("preview caption = %q", got)
		}
		tb.run(chromedp.ScrollIntoView(css(`#preview`)))
		tb.screenshot("preview-fr")
	})

	t.Run("an editor creates an item in the form, and store products open in theirs", func(t *testing.T) {
		tb := e.newTab(t)
		tb.signIn("editor2")
		tb.open("#/catalog", `a[href="#/new/items"]`)
		tb.run(chromedp.Click(css(`a[href="#/new/items"]`)), chromedp.WaitVisible(css(`.entity-form input[name=id]`)))
		tb.run(chromedp.SendKeys(css(`input[name=id]`), "axe"), chromedp.SendKeys(css(`input[name=name]`), "Axe"),
			chromedp.SendKeys(css(`input[name=tags]`), "melee, new"))
		tb.setValue(`select[name=kind]`, "durable")
		tb.run(chromedp.Click(xpath(`//button[text()="Add price"]`)), chromedp.WaitVisible(css(`input[name="prices[0].amount"]`)),
			chromedp.SendKeys(css(`input[name="prices[0].amount"]`), "30"),
			chromedp.Click(css(`button[name=save]`)),
			chromedp.WaitVisible(css(`#alert.alert-info`)), chromedp.WaitVisible(css(`.entity-form input[name=id][readonly]`)))
		if got := tb.text(`#alert`); !strings.Contains(got, "Created item axe") {
			t.Errorf("alert = %q", got)
		}
		if got := e.price(t, e.keys["viewer"], "axe", "gold"); got != 30 {
			t.Errorf("the draft's axe costs %d, want 30", got)
		}
		tb.open("#/catalog", `a[href="#/catalog/store_products/apple%3Acom.example.coinop.gems100"]`)
		tb.run(chromedp.Click(css(`a[href="#/catalog/store_products/apple%3Acom.example.coinop.gems100"]`)),
			chromedp.WaitVisible(css(`textarea[name=grants]`)))
		if got := eval[string](tb, `document.querySelector('textarea[name=grants]').value`); !strings.Contains(got, `"gems": 100`) {
			t.Errorf("grants = %q", got)
		}
	})

	t.Run("a publisher schedules the draft, then publishes now over the schedule", func(t *testing.T) {
		tb := e.newTab(t, "status of 409")
		tb.signIn("designer")
		tb.open("#/diff", `#publish-form`)
		tomorrow := time.Now().Add(24 * time.Hour).Format("2006-01-02T15:04")
		tb.setValue(`input[name=publish_at]`, tomorrow)
		if got := tb.text(`button[name=publish]`); got != "Schedule" {
			t.Errorf("with a time the button says %q, want Schedule", got)
		}
		tb.run(chromedp.SendKeys(css(`input[name=note]`), "potion sale tomorrow"), chromedp.Click(css(`button[name=publish]`)),
			chromedp.WaitVisible(css(`#publish-result p.ok`)))
		if got := tb.text(`#publish-result p.ok`); !strings.Contains(got, "(scheduled, live at ") {
			t.Errorf("schedule result = %q", got)
		}
		if got := e.price(t, "", "potion", "gold"); got != 100 {
			t.Errorf("a scheduled version is live already: potion costs %d", got)
		}
		// Publishing now would keep the scheduled version from ever going
		// live: the console says so and asks before superseding it.
		tb.open("#/versions", `table tbody tr`)
		tb.open("#/diff", `#publish-form`)
		tb.run(chromedp.Click(css(`button[name=publish]`)), chromedp.WaitVisible(css(`#publish-result button.danger`)))
		if got := tb.text(`#publish-result`); !strings.Contains(got, "scheduled version 3 (live at ") {
			t.Errorf("schedule conflict = %q", got)
		}
		tb.run(chromedp.Click(css(`#publish-result button.danger`)), chromedp.WaitVisible(css(`#publish-result p.ok`)))
		if got := e.price(t, "", "potion", "gold"); got != 70 {
			t.Errorf("after publishing now potion costs %d, want 70", got)
		}

		tb.open("#/versions", `button[name=rollback-1]`)
		tb.run(chromedp.Click(css(`button[name=rollback-1]`)), chromedp.WaitVisible(css(`input[name=rollback-note]`)),
			chromedp.Click(xpath(`//button[text()="Confirm rollback"]`)), chromedp.WaitVisible(css(`#alert.alert-info`)))
		if got := tb.text(`#alert`); !strings.Contains(got, "restores version 1 (live)") {
			t.Errorf("rollback alert = %q", got)
		}
		if got := e.price(t, "", "sword", "gold"); got != 500 {
			t.Errorf("after rolling back to version 1 the sword costs %d, want 500", got)
		}
	})
}
