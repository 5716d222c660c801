package loadtest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestOpenModelCountsQueueingAgainstTheServer is the coordinated-omission
// check: one worker, a server taking 50 ms, a request due every 25 ms. A
// closed-loop tool would report 50 ms and quietly send half the load; this
// one must count the time queued requests waited, mark them late, and drop
// (and count) what it could not queue.
func TestOpenModelCountsQueueingAgainstTheServer(t *testing.T) {
	f := newFakeCoinop()
	f.walletDelay = 50 * time.Millisecond
	url := f.start(t)
	cfg, err := ParseArgs([]string{"--url", url, "--rate", "40", "--duration", "500ms", "--workers", "1",
		"--players", "1", "--mix", "wallet=1", "--fund", "0", "--no-verify", "--jwt-secret", string(f.secret)},
		func(string) string { return "" }, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(cfg.URL, 1, cfg.Timeout, "", "")
	defer c.Close()
	obs := NewObserved()
	fx, err := Setup(context.Background(), cfg, c, obs, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), cfg, fx, c, obs, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := res.Stats[EndpointWallet]
	if res.Scheduled != 20 || res.Workers != 1 {
		t.Fatalf("scheduled %d workers %d", res.Scheduled, res.Workers)
	}
	if res.Dropped == 0 || res.Late == 0 {
		t.Fatalf("late %d dropped %d: a saturated pool must say so", res.Late, res.Dropped)
	}
	if w.Count()+res.Dropped != res.Scheduled {
		t.Fatalf("%d recorded + %d dropped != %d scheduled", w.Count(), res.Dropped, res.Scheduled)
	}
	// A queued request waited at least one interval before its 50 ms.
	if w.Max() < 74*time.Millisecond {
		t.Fatalf("max latency %v: queueing time was not counted", w.Max())
	}
	if w.Quantile(0) < 49*time.Millisecond {
		t.Fatalf("min latency %v is below the server's own time", w.Quantile(0))
	}
}
