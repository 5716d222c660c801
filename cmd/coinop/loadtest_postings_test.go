package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/loadtest"
)

// TestServerPostingsAgainstTheRealServer runs `coinop loadtest` with awards,
// spends and consumptions mixed into purchases, sent with the game-server
// key, against serve's own wiring: verification must find every acknowledged
// posting in the ledger exactly once, moving what was asked, and wallets and
// entitlements equal to purchases + awards − spends − consumptions. (The
// loadtest package's tests prove, against a deliberately broken fake, that
// the same check fails when an award is applied twice.)
func TestServerPostingsAgainstTheRealServer(t *testing.T) {
	secret, serverKey := strings.Repeat("k", 32), strings.Repeat("s", 32)
	settings := map[string]string{
		"COINOP_JWT_SECRET": secret, "COINOP_ADMIN_TOKEN": adminSecret, "COINOP_SERVER_TOKEN": serverKey,
		"COINOP_LOG_LEVEL": "error", "COINOP_RATE_LIMIT": "off",
	}
	_, base, _, _ := startServe(t, settings)
	doc := `{"currencies":[{"id":"gems","name":"Gems"},{"id":"gold","name":"Gold"}],"items":[` +
		`{"id":"potion","name":"Potion","kind":"consumable","prices":[{"currency":"gems","amount":5}]},` +
		`{"id":"elixir","name":"Elixir","kind":"consumable","prices":[{"currency":"gold","amount":3}]}]}`
	req, _ := http.NewRequest(http.MethodPut, base+"/admin/v1/catalog", strings.NewReader(doc))
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish: %d %s", resp.StatusCode, b)
	}

	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := loadtest.Command(ctx, []string{"--url", base, "--jwt-secret", secret, "--admin-token", adminSecret,
		"--server-key", serverKey, "--rate", "60", "--duration", "2s", "--players", "6", "--seed", "5", "--fund", "1000",
		"--mix", "purchase=3,award=3,spend=2,consume=2,wallet=1"},
		&out, &errb)
	if code != loadtest.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	o := out.String()
	if !strings.Contains(o, "result: ok") {
		t.Errorf("output lacks the ok result:\n%s", o)
	}
	m := regexp.MustCompile(`(\d+) purchases and (\d+) grants, (\d+) server postings observed, (\d+) ledger transactions`).FindStringSubmatch(o)
	if m == nil || m[3] == "0" {
		t.Fatalf("no server posting was verified:\n%s", o)
	}
	// Each acknowledged purchase, grant and posting is one ledger
	// transaction, and there is nothing else.
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	if n(m[1])+n(m[2])+n(m[3]) != n(m[4]) {
		t.Fatalf("%s purchases + %s grants + %s postings != %s ledger transactions", m[1], m[2], m[3], m[4])
	}
	for _, ep := range []string{"award", "spend", "consume"} {
		if !regexp.MustCompile(`(?m)^\s*` + ep + `\s+\d`).MatchString(o) {
			t.Errorf("the report has no %s line:\n%s", ep, o)
		}
	}
}
