package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The fake App Store Server API: with --store-api-addr the tool listens
// there and the server (COINOP_APPLE_API_URL=http://that-addr, with the
// COINOP_APPLE_API_* key settings) confirms every redemption with it, Get
// Transaction Info (GET /inApps/v1/transactions/{id}). It knows only the
// transactions this run minted, answers them signed with the run's
// AppleSigner (revoked once the store refunded them), and misbehaves at
// the configured rates: extra latency, 5xx answers, and timeouts (the
// request is held until the server gives up on it). Which request gets
// which fault follows from the run's seed and the request's position, so
// --replay injects the same faults in the same order.

// StoreFault is what the fake store API does to one request.
type StoreFault int

// The faults.
const (
	FaultNone    StoreFault = iota
	FaultError              // answer 500 or 503
	FaultTimeout            // hold the request until the caller gives up
)

// storeFaultAt returns the fault for the n-th request (from 0) of a run
// with this seed and these options, and which 5xx to answer. It depends on
// nothing else, so a replay gets the same sequence.
func storeFaultAt(seed uint64, n uint64, o ChaosOptions) (StoreFault, int) {
	rng := rand.New(rand.NewPCG(seed^0x53544f5245415049, n))
	x := rng.Float64() * 100
	switch {
	case x < o.StoreTimeouts:
		return FaultTimeout, 0
	case x < o.StoreTimeouts+o.StoreErrors:
		if rng.IntN(2) == 0 {
			return FaultError, http.StatusInternalServerError
		}
		return FaultError, http.StatusServiceUnavailable
	}
	return FaultNone, 0
}

// StoreAPIFaults counts what the fake store API did.
type StoreAPIFaults struct {
	Calls    int `json:"calls"`    // Get Transaction Info requests
	Delayed  int `json:"delayed"`  // answered after the extra latency
	Errors   int `json:"errors"`   // answered 5xx
	Timeouts int `json:"timeouts"` // held until the caller gave up
	Unknown  int `json:"unknown"`  // asked for a transaction the run never minted (404)
}

// Injected is the number of faults injected.
func (f StoreAPIFaults) Injected() int { return f.Delayed + f.Errors + f.Timeouts }

// storeAPI is the fake App Store Server API.
type storeAPI struct {
	signer *AppleSigner
	seed   uint64
	opt    ChaosOptions
	srv    *http.Server
	addr   string
	stop   chan struct{}

	mu      sync.Mutex
	n       uint64
	txs     map[string]StoreTx
	revoked map[string]time.Time
	stats   StoreAPIFaults
}

// startStoreAPI listens on addr (host:port on the loopback interface;
// port 0 picks one) and serves until close.
func startStoreAPI(addr string, signer *AppleSigner, seed uint64, opt ChaosOptions) (*storeAPI, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--store-api-addr: %w", err)
	}
	a := &storeAPI{signer: signer, seed: seed, opt: opt, addr: ln.Addr().String(), stop: make(chan struct{}),
		txs: map[string]StoreTx{}, revoked: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /inApps/v1/transactions/{id}", a.transactionInfo)
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

// URL is the base URL the server's COINOP_APPLE_API_URL must name.
func (a *storeAPI) URL() string { return "http://" + a.addr }

func (a *storeAPI) close() {
	close(a.stop) // releases held requests
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
}

// add makes tx known to the store.
func (a *storeAPI) add(tx StoreTx) {
	a.mu.Lock()
	a.txs[tx.TransactionID] = tx
	a.mu.Unlock()
}

// revoke records that the store refunded tx at t: Get Transaction Info
// answers it revoked from then on.
func (a *storeAPI) revoke(id string, t time.Time) {
	a.mu.Lock()
	a.revoked[id] = t
	a.mu.Unlock()
}

func (a *storeAPI) faults() StoreAPIFaults {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

func (a *storeAPI) transactionInfo(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	a.mu.Lock()
	n := a.n
	a.n++
	a.stats.Calls++
	tx, known := a.txs[id]
	revokedAt := a.revoked[id]
	a.mu.Unlock()
	fault, status := storeFaultAt(a.seed, n, a.opt)
	count := func(f func(*StoreAPIFaults)) {
		a.mu.Lock()
		f(&a.stats)
		a.mu.Unlock()
	}
	if fault == FaultTimeout {
		count(func(s *StoreAPIFaults) { s.Timeouts++ })
		select { // the caller's timeout ends it, or the run does
		case <-r.Context().Done():
		case <-a.stop:
		}
		return
	}
	if a.opt.StoreLatency > 0 {
		count(func(s *StoreAPIFaults) { s.Delayed++ })
		t := time.NewTimer(a.opt.StoreLatency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-a.stop:
			t.Stop()
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if fault == FaultError {
		count(func(s *StoreAPIFaults) { s.Errors++ })
		w.WriteHeader(status)
		// Apple's retryable "general internal error" shape.
		_, _ = w.Write([]byte(`{"errorCode":5000000,"errorMessage":"An unknown error occurred."}`))
		return
	}
	if !known {
		count(func(s *StoreAPIFaults) { s.Unknown++ })
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errorCode":4040010,"errorMessage":"Transaction id not found."}`))
		return
	}
	jws, err := a.signer.sign(a.signer.transaction(tx, revokedAt))
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"signedTransactionInfo": jws})
}

// validateStoreAPIAddr accepts host:port on the loopback interface: the
// server only lets a fake confirm fake-store transactions there.
func validateStoreAPIAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("--store-api-addr: %q is not host:port (such as 127.0.0.1:8090)", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return errors.New("--store-api-addr: " + addr + " is not a loopback address (the server accepts a fake App Store Server API only there)")
	}
	if strings.TrimSpace(port) != port {
		return fmt.Errorf("--store-api-addr: bad port %q", port)
	}
	return nil
}
