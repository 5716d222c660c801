package receipts

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestPlayHTTPClientSendsPlayCallsToTheBaseURL checks the rewrite: calls to
// Google's Play Developer API host go to the configured base URL, other
// hosts (the token URI) are left alone, and bad base URLs are refused.
func TestPlayHTTPClientSendsPlayCallsToTheBaseURL(t *testing.T) {
	var path string
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { path = r.URL.Path }))
	defer fake.Close()
	c, err := PlayHTTPClient(fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get("https://" + PlayAPIHost + "/androidpublisher/v3/applications/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if path != "/androidpublisher/v3/applications/x" {
		t.Fatalf("the fake saw %q", path)
	}
	path = ""
	resp, err = c.Get(fake.URL + "/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if path != "/token" {
		t.Fatalf("a request to another host was changed: the fake saw %q", path)
	}
	if c, err := PlayHTTPClient(""); err != nil || c.Transport != nil {
		t.Fatalf("empty base URL: %v, transport %v", err, c.Transport)
	}
	for _, bad := range []string{"127.0.0.1:9", "ftp://x", "http://127.0.0.1:9/api"} {
		if _, err := PlayHTTPClient(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
