package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkPurchaseHTTP measures one purchase end to end: JWT check, body
// decode, the ledger writer against real Postgres, response. Each iteration is a
// new idempotency key, so every one is a real charge and grant.
//
// "app.Test" runs in-process with no sockets; "listener" goes over loopback
// TCP with a keep-alive client, several players in parallel.
func BenchmarkPurchaseHTTP(b *testing.B) {
	e := newEnv(b)
	const players = 8
	tokens := make([]string, players)
	for i := range players {
		id := fmt.Sprint("bench-", i)
		tokens[i] = playerToken(id)
		e.grant(b, id, "fund", map[string]int64{"gold": 1_000_000_000_000}, nil)
	}
	body := buy("arrow", 1, "gold", 1)
	var seq atomic.Int64
	base := e.listen(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	b.Run("app.Test", func(b *testing.B) {
		for b.Loop() {
			req := newRequest(http.MethodPost, "/v1/purchases", []byte(body),
				"Authorization", bearer(tokens[0]), "Content-Type", "application/json",
				"Idempotency-Key", fmt.Sprint("k-", seq.Add(1)))
			r, err := e.send(req)
			if err != nil || r.status != http.StatusCreated {
				b.Fatalf("purchase: %v %s", err, r)
			}
		}
	})

	b.Run("listener", func(b *testing.B) {
		var player atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			token := tokens[int(player.Add(1))%players]
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodPost, base+"/v1/purchases", strings.NewReader(body))
				req.Header.Set("Authorization", bearer(token))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", fmt.Sprint("k-", seq.Add(1)))
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				r := readResponse(b, resp)
				resp.Body.Close()
				if r.status != http.StatusCreated {
					b.Errorf("purchase: %s", r)
					return
				}
			}
		})
	})
}

// BenchmarkCachedCheckHTTP measures the game server's hot path,
// GET /v1/players/{id}/entitlements/{item} answered from a warm cache, over
// loopback TCP with keep-alive connections and the server token, several
// checks in flight. Profile it with -cpuprofile to see where a check's time
// goes (bench/ measures the rate it sustains).
func BenchmarkCachedCheckHTTP(b *testing.B) {
	e := cachedEnv(b, withServerToken())
	const players = 50
	for i := range players {
		e.grant(b, fmt.Sprint("bench-", i), "fund", nil, map[string]int64{"sword": 1})
	}
	base := e.listen(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/players/bench-%d/entitlements/sword", base, n.Add(1)%players), nil)
			req.Header.Set("Authorization", bearer(serverToken))
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			r := readResponse(b, resp)
			resp.Body.Close()
			if r.status != http.StatusOK {
				b.Errorf("check: %s", r)
				return
			}
		}
	})
}
