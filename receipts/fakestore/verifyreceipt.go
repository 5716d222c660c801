package fakestore

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/awa/go-iap/appstore"
)

// Answer is how a fake verifyReceipt endpoint responds to one request.
type Answer func(appstore.IAPRequest) (status int, body any)

// VerifyReceiptServer answers /prod and /sandbox like Apple's legacy
// verifyReceipt endpoints, for tests that point go-iap's appstore client
// (ProductionURL, SandboxURL) at an httptest server. A nil Answer means the
// endpoint must not be called (418).
type VerifyReceiptServer struct {
	mu            sync.Mutex
	hits          []string
	prod, sandbox Answer
}

// NewVerifyReceiptServer returns a server answering with prod and sandbox.
func NewVerifyReceiptServer(prod, sandbox Answer) *VerifyReceiptServer {
	return &VerifyReceiptServer{prod: prod, sandbox: sandbox}
}

func (f *VerifyReceiptServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req appstore.IAPRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.hits = append(f.hits, r.URL.Path)
	h := f.prod
	if r.URL.Path == "/sandbox" {
		h = f.sandbox
	}
	f.mu.Unlock()
	if h == nil {
		http.Error(w, "unexpected call", http.StatusTeapot)
		return
	}
	status, body := h(req)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// Answer replaces both endpoints' answers and forgets earlier calls.
func (f *VerifyReceiptServer) Answer(prod, sandbox Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prod, f.sandbox, f.hits = prod, sandbox, nil
}

// Calls lists the paths called so far, comma-separated ("/prod,/sandbox").
func (f *VerifyReceiptServer) Calls() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.hits, ",")
}
