package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/loadtest"
)

// TestCreatorEarningsAgainstTheRealServer runs `coinop loadtest` with the
// creator program on, against serve's own wiring: half the players set a
// code of one of the run's creators, and purchases, server spends and tips
// are mixed in. Verification must find each creator's earned_micro equal,
// to the micro-unit, to the exact sum of the shares of what the tool saw
// succeed. The server runs with a share and a fee other than the defaults
// (told to the tool with flags), and one item is creator-made with a 97%
// share, which leaves a code 3% of its sales: the tool's arithmetic must
// agree with the server's on both. (The loadtest package's tests prove,
// against a deliberately broken fake, that the same check fails on a
// single micro-unit.)
func TestCreatorEarningsAgainstTheRealServer(t *testing.T) {
	secret, serverKey := strings.Repeat("k", 32), strings.Repeat("s", 32)
	settings := map[string]string{
		"COINOP_JWT_SECRET": secret, "COINOP_ADMIN_TOKEN": adminSecret, "COINOP_SERVER_TOKEN": serverKey,
		"COINOP_LOG_LEVEL": "error", "COINOP_RATE_LIMIT": "off",
		"COINOP_CREATOR_PROGRAM": "true", "COINOP_CREATOR_SHARE": "7.5%", "COINOP_CREATOR_TIP_FEE": "12.5%",
	}
	_, base, _, _ := startServe(t, settings)
	admin := func(method, path, body string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminSecret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	admin(http.MethodPost, "/admin/v1/creators", `{"creator_id":"mapmaker","display_name":"Map maker"}`, http.StatusCreated)
	admin(http.MethodPut, "/admin/v1/catalog", `{"currencies":[{"id":"gems","name":"Gems","tippable":true},{"id":"gold","name":"Gold"}],"items":[`+
		`{"id":"potion","name":"Potion","kind":"consumable","prices":[{"currency":"gems","amount":3}]},`+
		`{"id":"torch","name":"Torch","kind":"consumable","prices":[{"currency":"gold","amount":1}]},`+
		`{"id":"map","name":"Custom map","kind":"consumable","prices":[{"currency":"gold","amount":7}],"creator_id":"mapmaker","creator_share_ppm":970000}],`+
		// The crate's maps are 21 of its 22 gold of list value (with a torch): the map maker
		// gets floor(97% × 21/22) = 925909 ppm of it, which leaves a code
		// 74091 ppm, less than the 7.5% share and more than the map's 3%.
		`"bundles":[{"id":"mapcrate","name":"Map crate","prices":[{"currency":"gold","amount":12}],"contents":{"items":{"map":3,"torch":1}}}]}`,
		http.StatusCreated)

	report := filepath.Join(t.TempDir(), "report.json")
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := loadtest.Command(ctx, []string{"--url", base, "--jwt-secret", secret, "--admin-token", adminSecret,
		"--server-key", serverKey, "--rate", "60", "--duration", "2s", "--players", "6", "--seed", "5", "--fund", "1000",
		"--mix", "purchase=4,spend=1,tip=2,wallet=1", "--creators", "2", "--creator-code-share", "0.5", "--tip-max", "9",
		"--creator-share", "7.5%", "--creator-tip-fee", "12.5%", "--out", report},
		&out, &errb)
	if code != loadtest.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	o := out.String()
	for _, want := range []string{"3 of 6 players support one with its code", "creators: 2 (share 7.5%, tip fee 12.5%, every currency)",
		"2 of 2 earn exactly the sum of their shares", "result: ok"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	m := regexp.MustCompile(`(\d+) purchases and spends under their codes and (\d+) tips`).FindStringSubmatch(o)
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Fatalf("the run credited too little to prove anything:\n%s", o)
	}

	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadtest.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	v := rep.Verification
	if v == nil || len(v.Creators) != 2 {
		t.Fatalf("verification %+v", v)
	}
	// Not a vacuous agreement: both creators earned something, gold (the
	// creator-made map at 3%) included somewhere.
	gold := false
	for _, ch := range v.Creators {
		if !ch.OK || len(ch.EarnedMicro) == 0 {
			t.Errorf("creator %+v", ch)
		}
		gold = gold || ch.EarnedMicro["gold"] > 0
	}
	if !gold {
		t.Errorf("no creator earned from the creator-made map: the capped share went unchecked:\n%s", o)
	}
}
