package receipts

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestPlayHTTPClientRewritesPlayHost: calls to the Play Developer API host
// reach the configured base URL; bad base URLs are refused.
func TestPlayHTTPClientRewritesPlayHost(t *testing.T) {
	var path string
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { path = r.URL.Path }))
	defer fake.Close()
	c, err := PlayHTTPClient(fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get("https://" + PlayAPIHost + "/androidpublisher/v3/applications/p/purchases/products/x/tokens/t")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if path != "/androidpublisher/v3/applications/p/purchases/products/x/tokens/t" {
		t.Fatalf("fake asked %q", path)
	}
	for _, bad := range []string{"127.0.0.1:9", "ftp://x", "http://h/path"} {
		if _, err := PlayHTTPClient(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
