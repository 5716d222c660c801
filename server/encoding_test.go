package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Success and problem bodies come from one encoder: compact, with the same
// escaping, and problems with their standard members first, in one order,
// on the first answer and on a replay alike.
func TestSuccessAndProblemBodiesShareOneEncoding(t *testing.T) {
	e := newEnv(t)
	e.grant(t, "a<b", "fund", map[string]int64{"gold": 150}, nil)
	bodies := map[string]response{
		"wallet":           e.get(t, "/v1/wallet", playerToken("a<b")),
		"purchase":         e.purchase(t, "a<b", "k1", buy("potion", 1, "gold", 100)),
		"purchase replay":  e.purchase(t, "a<b", "k1", buy("potion", 1, "gold", 100)),
		"rejection":        e.purchase(t, "a<b", "k2", buy("potion", 1, "gold", 100)),
		"rejection replay": e.purchase(t, "a<b", "k2", buy("potion", 1, "gold", 100)),
		"401":              e.get(t, "/v1/wallet", ""),
	}
	for name, r := range bodies {
		var compact bytes.Buffer
		if err := json.Compact(&compact, r.body); err != nil {
			t.Fatalf("%s: not JSON: %v: %s", name, err, r.body)
		}
		if !bytes.Equal(compact.Bytes(), r.body) {
			t.Errorf("%s body is not compact: %s", name, r.body)
		}
		if bytes.ContainsAny(r.body, "<>") {
			t.Errorf("%s body does not escape < and > as every other body does: %s", name, r.body)
		}
	}
	if !strings.Contains(string(bodies["wallet"].body), `"player_id":"a\u003cb"`) {
		t.Errorf("wallet: %s", bodies["wallet"].body)
	}
	for _, name := range []string{"rejection", "rejection replay", "401"} {
		r := bodies[name]
		if r.status < 400 {
			t.Fatalf("%s: status %d: %s", name, r.status, r.body)
		}
		if !bytes.HasPrefix(r.body, []byte(`{"type":"urn:coinop:problem:`)) ||
			!bytes.Contains(r.body, []byte(`","status":`)) ||
			bytes.Index(r.body, []byte(`"title":`)) > bytes.Index(r.body, []byte(`"status":`)) ||
			bytes.Index(r.body, []byte(`"status":`)) > bytes.Index(r.body, []byte(`"code":`)) ||
			bytes.Index(r.body, []byte(`"code":`)) > bytes.Index(r.body, []byte(`"detail":`)) {
			t.Errorf("%s: standard members not first in the order type, title, status, code, detail: %s", name, r.body)
		}
	}
	if !bytes.Equal(bodies["purchase"].body, bodies["purchase replay"].body) {
		t.Errorf("replay differs:\n%s\n%s", bodies["purchase"].body, bodies["purchase replay"].body)
	}
	if !bytes.Equal(bodies["rejection"].body, bodies["rejection replay"].body) {
		t.Errorf("replayed rejection differs:\n%s\n%s", bodies["rejection"].body, bodies["rejection replay"].body)
	}
	if bodies["purchase"].status != http.StatusCreated {
		t.Errorf("purchase: %s", bodies["purchase"])
	}
}
