package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Headers alone that declare large bodies must not cost memory before
// authentication: 400 connections each declaring 4 MiB to /healthz, none
// sending a byte of body, leave the heap under 100 MB and /healthz
// answering on a new connection. (Not parallel: it reads the heap.)
func TestDeclaredBodiesCostNoMemoryBeforeTheyArrive(t *testing.T) {
	e := newEnv(t)
	base := e.listen(t)
	addr := strings.TrimPrefix(base, "http://")
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const conns = 400
	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: coinop\r\nContent-Length: %d\r\n\r\n", 4<<20); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.app.Server().GetOpenConnectionsCount() < conns {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d connections open", e.app.Server().GetOpenConnectionsCount(), conns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %d with %d connections holding declared bodies", resp.StatusCode, conns)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew %.1f MB for %d connections declaring 4 MiB each", float64(grown)/(1<<20), conns)
	if grown > 100<<20 {
		t.Errorf("heap grew %.0f MB: declared bodies are allocated before they arrive", float64(grown)/(1<<20))
	}
}

// NUL characters and invalid UTF-8, which Postgres cannot store or compare
// as text, are the client's error (400), wherever they arrive.
func TestBadTextIsABadRequest(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ name, method, path, body string }{
		{"a NUL in an audit filter", http.MethodGet, "/admin/v1/audit-log?actor=a%00b", ""},
		{"invalid UTF-8 in an audit filter", http.MethodGet, "/admin/v1/audit-log?target=%FF%FE", ""},
		{"a NUL in a draft item's name", http.MethodPut, "/admin/v1/catalog/draft/items/sword",
			`{"id":"sword","name":"Iron\u0000Sword","kind":"durable","prices":[{"currency":"gold","amount":500}]}`},
		{"a NUL in a grant reason", http.MethodPost, "/admin/v1/players/p1/grants", `{"reason":"ticket\u0000","currencies":{"gold":1}}`},
		{"a NUL in a key name", http.MethodPost, "/admin/v1/keys", `{"name":"a\u0000","roles":["viewer"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := e.do(t, newRequest(tc.method, tc.path, body, "Authorization", bearer(adminToken),
				"Content-Type", "application/json", "Idempotency-Key", "k-"+tc.name[:6]))
			assertProblem(t, r, http.StatusBadRequest, "invalid_request")
		})
	}
}

// Requests without a body, and bodies a route read whole, keep the
// connection alive: only an unread body ends it.
func TestConnectionsStayOpenWhenNoBodyIsLeftUnread(t *testing.T) {
	e := newEnv(t)
	base := e.listen(t)
	conn := dialRaw(t, base)
	body := buy("potion", 1, "gold", 100)
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: coinop\r\n\r\n")
	fmt.Fprintf(conn, "POST /v1/purchases HTTP/1.1\r\nHost: coinop\r\nAuthorization: %s\r\nContent-Type: application/json\r\nIdempotency-Key: ka\r\nContent-Length: %d\r\n\r\n%s",
		bearer(playerToken("p1")), len(body), body)
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: coinop\r\n\r\n")
	br := bufio.NewReader(conn)
	for i, want := range []int{http.StatusOK, http.StatusPaymentRequired, http.StatusOK} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || resp.Close {
			t.Errorf("response %d: %d (close %v), want %d on a kept-alive connection", i, resp.StatusCode, resp.Close, want)
		}
	}
}

// A request framed ambiguously (Content-Length and chunked together, or two
// Content-Lengths) is answered once and its connection closed: nothing
// after it on the connection is served as another request.
func TestAmbiguousFramingServesNothingSmuggled(t *testing.T) {
	e := newEnv(t)
	base := e.listen(t)
	smuggled := "GET /healthz HTTP/1.1\r\nHost: coinop\r\n\r\n"
	for name, raw := range map[string]string{
		"Content-Length with chunked": "POST /v1/purchases HTTP/1.1\r\nHost: coinop\r\nContent-Type: application/json\r\n" +
			"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"two Content-Lengths": fmt.Sprintf("POST /v1/purchases HTTP/1.1\r\nHost: coinop\r\nContent-Type: application/json\r\n"+
			"Content-Length: 2\r\nContent-Length: %d\r\n\r\n{}%s", 2+len(smuggled), smuggled),
	} {
		t.Run(name, func(t *testing.T) {
			conn := dialRaw(t, base)
			if _, err := fmt.Fprint(conn, raw); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer at all: %v", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("an ambiguously framed request was accepted: %d", resp.StatusCode)
			}
			if next, err := http.ReadResponse(br, nil); err == nil {
				next.Body.Close()
				t.Fatalf("a request smuggled behind it was served: %d", next.StatusCode)
			}
		})
	}
}
