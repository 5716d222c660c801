package receipts

import (
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// PlayAPIHost is the Google Play Developer API's host, which go-iap's
// client (through google.golang.org/api/androidpublisher) always calls.
const PlayAPIHost = "androidpublisher.googleapis.com"

// PlayHTTPClient returns an HTTP client for NewPlayAPI whose Play Developer
// API calls go to baseURL (scheme and host, such as a local fake's
// http://127.0.0.1:8081) instead of Google's; empty baseURL means Google's.
// go-iap offers no endpoint option, so the client rewrites the host of
// requests to PlayAPIHost and leaves every other request alone: the OAuth
// token request goes to the service-account key's token_uri, which a fake's
// key points at the fake too. Reconciliation (stores/sweep) reuses it.
func PlayHTTPClient(baseURL string) (*http.Client, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	if baseURL == "" {
		return c, nil
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("receipts: play api base URL %q: want scheme and host only", baseURL)
	}
	c.Transport = playRewrite{scheme: u.Scheme, host: u.Host, next: http.DefaultTransport}
	return c, nil
}

type playRewrite struct {
	scheme, host string
	next         http.RoundTripper
}

func (p playRewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != PlayAPIHost {
		return p.next.RoundTrip(r)
	}
	// RoundTrippers must not modify the caller's request.
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = p.scheme, p.host, ""
	return p.next.RoundTrip(r2)
}
