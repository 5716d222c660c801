package fakestore

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/api/androidpublisher/v3"
)

// PlayServer fakes the parts of the Google Play Developer API that coinop
// calls, plus the OAuth token endpoint of the service account returned by
// PlayClient. Serve it with httptest.NewServer (or any listener). Safe for
// concurrent use.
type PlayServer struct {
	mu       sync.Mutex
	products map[string]*androidpublisher.ProductPurchase        // by token
	subs     map[string]*androidpublisher.SubscriptionPurchaseV2 // by token
	voided   []*androidpublisher.VoidedPurchase
	calls    []string
	status   int
	// VoidedPageSize is how many voided purchases one page holds (default
	// 2, so tests see the pagination).
	VoidedPageSize int
}

// NewPlayServer returns an empty fake.
func NewPlayServer() *PlayServer {
	return &PlayServer{
		products: map[string]*androidpublisher.ProductPurchase{},
		subs:     map[string]*androidpublisher.SubscriptionPurchaseV2{},
	}
}

// AddProduct makes token answer p on purchases.products.get.
func (s *PlayServer) AddProduct(token string, p *androidpublisher.ProductPurchase) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.products[token] = p
}

// AddSubscription makes token answer p on purchases.subscriptionsv2.get.
func (s *PlayServer) AddSubscription(token string, p *androidpublisher.SubscriptionPurchaseV2) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[token] = p
}

// AddVoided lists v on purchases.voidedpurchases.list (by its
// voidedTimeMillis).
func (s *PlayServer) AddVoided(v *androidpublisher.VoidedPurchase) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *v
	c.Kind = "androidpublisher#voidedPurchase"
	s.voided = append(s.voided, &c)
}

// FailWith makes every API call (not the token endpoint) answer HTTP
// status; 0 restores normal answers.
func (s *PlayServer) FailWith(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// Calls lists the API calls received, as "METHOD path".
func (s *PlayServer) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// Product returns the current state of a product purchase (acknowledged,
// consumed), or nil.
func (s *PlayServer) Product(token string) *androidpublisher.ProductPurchase {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.products[token]; ok {
		c := *p
		return &c
	}
	return nil
}

const apiPrefix = "/androidpublisher/v3/applications/"

func (s *PlayServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		writeJSON(w, http.StatusOK, map[string]any{"access_token": "fake-access-token", "token_type": "Bearer", "expires_in": 3600})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, r.Method+" "+r.URL.Path)
	if s.status != 0 {
		writeError(w, s.status, "injected failure")
		return
	}
	if r.Header.Get("Authorization") != "Bearer fake-access-token" {
		writeError(w, http.StatusUnauthorized, "missing access token")
		return
	}
	path, _ := url.PathUnescape(r.URL.EscapedPath())
	rest, ok := strings.CutPrefix(path, apiPrefix)
	if !ok {
		writeError(w, http.StatusNotFound, "no such API")
		return
	}
	parts := strings.Split(rest, "/")
	// {pkg}/purchases/products/{product}/tokens/{token}[:acknowledge|:consume]
	// {pkg}/purchases/subscriptionsv2/tokens/{token}
	// {pkg}/purchases/subscriptions/{sub}/tokens/{token}:acknowledge
	// {pkg}/purchases/voidedpurchases
	switch {
	case len(parts) == 3 && parts[1] == "purchases" && parts[2] == "voidedpurchases" && r.Method == http.MethodGet:
		s.listVoided(w, r)
	case len(parts) == 6 && parts[1] == "purchases" && parts[2] == "products" && parts[4] == "tokens":
		token, action, _ := strings.Cut(parts[5], ":")
		p, ok := s.products[token]
		if !ok || (p.ProductId != "" && p.ProductId != parts[3]) {
			writeError(w, http.StatusNotFound, "The purchase token was not found.")
			return
		}
		switch {
		case action == "" && r.Method == http.MethodGet:
			c := *p
			c.Kind = "androidpublisher#productPurchase"
			writeJSON(w, http.StatusOK, &c)
		case action == "acknowledge" && r.Method == http.MethodPost:
			p.AcknowledgementState = 1
			w.WriteHeader(http.StatusNoContent)
		case action == "consume" && r.Method == http.MethodPost:
			p.ConsumptionState = 1
			p.AcknowledgementState = 1
			w.WriteHeader(http.StatusNoContent)
		default:
			writeError(w, http.StatusNotFound, "no such method")
		}
	case len(parts) == 5 && parts[1] == "purchases" && parts[2] == "subscriptionsv2" && parts[3] == "tokens" && r.Method == http.MethodGet:
		sub, ok := s.subs[parts[4]]
		if !ok {
			writeError(w, http.StatusNotFound, "The purchase token was not found.")
			return
		}
		c := *sub
		c.Kind = "androidpublisher#subscriptionPurchaseV2"
		writeJSON(w, http.StatusOK, &c)
	case len(parts) == 6 && parts[1] == "purchases" && parts[2] == "subscriptions" && parts[4] == "tokens" && r.Method == http.MethodPost:
		token, action, _ := strings.Cut(parts[5], ":")
		sub, ok := s.subs[token]
		if !ok || action != "acknowledge" {
			writeError(w, http.StatusNotFound, "The purchase token was not found.")
			return
		}
		sub.AcknowledgementState = "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusNotFound, "no such API")
	}
}

// listVoided answers voidedpurchases.list as Play documents it: voided
// purchases with startTime <= voidedTimeMillis <= endTime (endTime default
// now), quantity-based partial refunds only
// with includeQuantityBasedPartialRefund=true, token pagination. Caller
// holds s.mu.
func (s *PlayServer) listVoided(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	num := func(k string, def int64) int64 {
		if v, err := strconv.ParseInt(q.Get(k), 10, 64); err == nil {
			return v
		}
		return def
	}
	start, end := num("startTime", 0), num("endTime", time.Now().UnixMilli())
	partial := q.Get("includeQuantityBasedPartialRefund") == "true"
	var match []*androidpublisher.VoidedPurchase
	for _, v := range s.voided {
		if v.VoidedTimeMillis < start || v.VoidedTimeMillis > end || (v.VoidedQuantity > 0 && !partial) {
			continue
		}
		match = append(match, v)
	}
	size := s.VoidedPageSize
	if size <= 0 {
		size = 2
	}
	from, _ := strconv.Atoi(strings.TrimPrefix(q.Get("token"), "page-"))
	if from > len(match) {
		from = len(match)
	}
	to := min(from+size, len(match))
	res := &androidpublisher.VoidedPurchasesListResponse{VoidedPurchases: match[from:to]}
	if to < len(match) {
		res.TokenPagination = &androidpublisher.TokenPagination{NextPageToken: "page-" + strconv.Itoa(to)}
	}
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg}})
}

// One fake service-account key per process: generating RSA keys is slow.
var (
	saKeyOnce sync.Once
	saKey     *rsa.PrivateKey
	saKeyErr  error
)

// PlayClient returns a service-account JSON key whose token_uri is
// serverURL/token and an HTTP client that sends every request (token and API
// alike) to serverURL, for receipts.NewPlayAPI. The key is freshly generated
// and worthless anywhere else.
func PlayClient(serverURL string) (serviceAccountJSON []byte, client *http.Client, err error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, nil, err
	}
	saKeyOnce.Do(func() { saKey, saKeyErr = rsa.GenerateKey(rand.Reader, 2048) })
	if saKeyErr != nil {
		return nil, nil, saKeyErr
	}
	der, err := x509.MarshalPKCS8PrivateKey(saKey)
	if err != nil {
		return nil, nil, err
	}
	serviceAccountJSON, err = json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "coinop-fake",
		"private_key_id": "fake",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "coinop-fake@coinop-fake.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      serverURL + "/token",
	})
	if err != nil {
		return nil, nil, err
	}
	return serviceAccountJSON, &http.Client{Transport: rewriteHost{to: u}}, nil
}

// rewriteHost sends every request to one server, whatever its URL says.
type rewriteHost struct{ to *url.URL }

func (t rewriteHost) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme = t.to.Scheme
	r.URL.Host = t.to.Host
	r.Host = t.to.Host
	return http.DefaultTransport.RoundTrip(r)
}
