package server_test

import (
	"fmt"
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
