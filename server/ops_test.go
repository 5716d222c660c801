package server_test

import (
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

type readiness struct {
	Status         string `json:"status"`
	CatalogVersion int64  `json:"catalog_version"`
	Checks         struct {
		Postgres, Redis struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
	} `json:"checks"`
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	r := e.get(t, "/healthz", "")
	if r.status != http.StatusOK || string(r.body) != `{"status":"ok"}` {
		t.Errorf("GET /healthz: %s", r)
	}

	r = e.get(t, "/readyz", "")
	var ready readiness
	r.decode(t, &ready)
	if r.status != http.StatusOK || ready.Status != "ok" || ready.CatalogVersion != 1 || !ready.Checks.Postgres.OK || !ready.Checks.Redis.OK {
		t.Errorf("GET /readyz: %s", r)
	}

	t.Run("Redis down is ready but degraded", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		e := newEnv(t, withRedis(rdb))
		r := e.get(t, "/readyz", "")
		var ready readiness
		r.decode(t, &ready)
		if r.status != http.StatusOK || ready.Status != "degraded" || !ready.Checks.Postgres.OK || ready.Checks.Redis.OK || ready.Checks.Redis.Error == "" {
			t.Errorf("GET /readyz with Redis down: %s", r)
		}
		// The API works without its cache.
		e.grant(t, "p1", "fund", map[string]int64{"gold": 100}, nil)
		if r := e.purchase(t, "p1", "k", buy("potion", 1, "gold", 100)); r.status != http.StatusCreated {
			t.Errorf("purchase with Redis down: %s", r)
		}
		if w := e.wallet(t, "p1"); w["gold"] != 0 {
			t.Errorf("gold = %d, want 0", w["gold"])
		}
	})
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.getCatalog(t, "")
	e.grant(t, "p1", "fund", map[string]int64{"gold": 100}, nil)
	e.purchase(t, "p1", "k", buy("potion", 1, "gold", 100))
	e.purchase(t, "p1", "k2", buy("potion", 1, "gold", 100))
	e.get(t, "/no/such/route/12345", "")

	r := e.get(t, "/metrics", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", r.status, r.header.Get("Content-Type"))
	}
	text := string(r.body)
	for _, want := range []string{
		"# TYPE coinop_http_request_duration_seconds histogram",
		`coinop_http_request_duration_seconds_bucket{method="GET",route="/v1/catalog",status="200",le="+Inf"} 1`,
		`coinop_http_request_duration_seconds_count{method="POST",route="/v1/purchases",status="201"} 1`,
		`coinop_http_request_duration_seconds_count{method="POST",route="/v1/purchases",status="402"} 1`,
		`coinop_http_request_duration_seconds_count{method="POST",route="/admin/v1/players/:player_id/grants",status="201"} 1`,
		`coinop_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1`,
		`coinop_db_pool_connections{state="idle"}`,
		`coinop_db_pool_connections{state="acquired"}`,
		"coinop_db_pool_max_connections ",
		"coinop_db_pool_acquires_total ",
		"go_goroutines ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Route labels are templates, never raw paths, so cardinality stays bounded.
	if strings.Contains(text, "12345") || strings.Contains(text, `route="/admin/v1/players/p1`) {
		t.Error("/metrics has a raw path as a route label")
	}
	if m := regexp.MustCompile(`coinop_db_pool_acquires_total (\d+)`).FindStringSubmatch(text); m == nil || m[1] == "0" {
		t.Errorf("coinop_db_pool_acquires_total = %v, want > 0", m)
	}
}

func TestRequestIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	req := newRequest(http.MethodGet, "/healthz", nil, "X-Request-Id", "trace-abc-123")
	if r := e.do(t, req); r.header.Get("X-Request-Id") != "trace-abc-123" {
		t.Errorf("X-Request-Id = %q, want the caller's", r.header.Get("X-Request-Id"))
	}
	for _, bad := range []string{"has space", strings.Repeat("x", 129)} {
		req := newRequest(http.MethodGet, "/healthz", nil, "X-Request-Id", bad)
		if id := e.do(t, req).header.Get("X-Request-Id"); id == bad || len(id) != 36 {
			t.Errorf("X-Request-Id %q came back as %q, want a fresh UUID", bad, id)
		}
	}
	if id := e.get(t, "/healthz", "").header.Get("X-Request-Id"); len(id) != 36 {
		t.Errorf("X-Request-Id = %q, want a UUID", id)
	}
}
