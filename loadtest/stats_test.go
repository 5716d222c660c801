package loadtest

import (
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestMergedStatsEqualOneHistogramOfEverything(t *testing.T) {
	a, b, all := NewEndpointStats(), NewEndpointStats(), NewEndpointStats()
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i) * time.Millisecond
		code := ""
		if i%100 == 0 {
			code = "insufficient_funds"
		}
		if i%2 == 0 {
			a.Record(d, code)
		} else {
			b.Record(d, code)
		}
		all.Record(d, code)
	}
	merged := NewEndpointStats()
	merged.Merge(a)
	merged.Merge(b)
	if !merged.Hist.Equals(all.Hist) {
		t.Fatal("merged histogram differs from the histogram of all values")
	}
	if merged.Count() != 1000 || merged.ErrorCount() != 10 || merged.Errors["insufficient_funds"] != 10 {
		t.Fatalf("count %d, errors %v", merged.Count(), merged.Errors)
	}
	if a.Count() != 500 {
		t.Fatalf("Merge changed its argument: %d", a.Count())
	}
}

func TestPercentilesAreWithinHistogramPrecision(t *testing.T) {
	s := NewEndpointStats()
	for i := 1; i <= 10000; i++ {
		s.Record(time.Duration(i)*100*time.Microsecond, "") // 0.1 ms … 1 s
	}
	e := SummarizeEndpoint("purchase", s, 10*time.Second)
	// 3 significant digits: within 0.1% of the exact order statistic.
	for _, c := range []struct {
		name string
		got  int64
		want int64
	}{
		{"p50", e.P50US, 500_000},
		{"p90", e.P90US, 900_000},
		{"p99", e.P99US, 990_000},
		{"p99.9", e.P999US, 999_000},
		{"max", e.MaxUS, 1_000_000},
	} {
		if diff := float64(c.got-c.want) / float64(c.want); diff < 0 || diff > 0.001 {
			t.Errorf("%s = %dµs, want %dµs within +0.1%%", c.name, c.got, c.want)
		}
	}
	if e.Count != 10000 || e.Rate != 1000 {
		t.Errorf("count %d rate %v", e.Count, e.Rate)
	}
	last := int64(-1)
	for _, p := range e.Distribution {
		if p.US < last {
			t.Fatalf("distribution not monotonic at %v", p)
		}
		last = p.US
	}
	if n := len(e.Distribution); n == 0 || e.Distribution[n-1].Percentile != 100 {
		t.Fatalf("distribution should end at the maximum: %v", e.Distribution)
	}
}

func TestDistributionStopsWhereSamplesRunOut(t *testing.T) {
	s := NewEndpointStats()
	for i := range 100 {
		s.Record(time.Duration(i+1)*time.Millisecond, "")
	}
	for _, p := range SummarizeEndpoint("x", s, time.Second).Distribution {
		if p.Percentile > 99 && p.Percentile < 100 {
			t.Fatalf("percentile %v shown for only 100 samples", p.Percentile)
		}
	}
}

func TestLatencyBeyondTheRangeIsClampedNotLost(t *testing.T) {
	s := NewEndpointStats()
	s.Record(2*time.Hour, "timeout")
	s.Record(0, "")
	if s.Count() != 2 {
		t.Fatalf("count %d, want 2", s.Count())
	}
	if s.Max() < time.Hour-time.Second {
		t.Fatalf("max %v, want about an hour", s.Max())
	}
}

func TestRecorderMergesShardsFromManyGoroutines(t *testing.T) {
	r := NewRecorder(4)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				code := ""
				if i == 0 {
					code = "timeout"
				}
				r.Record(g, EndpointWallet, time.Millisecond, code)
				r.Record(g, EndpointPurchase, 3*time.Millisecond, "")
			}
		})
	}
	// Flushing while workers record is what the progress line does.
	r.Flush(500*time.Millisecond, 500*time.Millisecond, 0)
	wg.Wait()
	p := r.Flush(time.Second, 500*time.Millisecond, 0)
	tot := r.Totals()
	if tot[EndpointWallet].Count() != 8000 || tot[EndpointPurchase].Count() != 8000 {
		t.Fatalf("totals %d / %d, want 8000 each", tot[EndpointWallet].Count(), tot[EndpointPurchase].Count())
	}
	if tot[EndpointWallet].Errors["timeout"] != 8 {
		t.Fatalf("errors %v", tot[EndpointWallet].Errors)
	}
	tl := r.Timeline()
	if len(tl) != 2 || tl[0].Requests+tl[1].Requests != 16000 || tl[1].ElapsedMS != 1000 {
		t.Fatalf("timeline %+v", tl)
	}
	if p.Requests > 0 && p.Rate != float64(p.Requests)/0.5 {
		t.Fatalf("rate %v for %d requests in 0.5s", p.Rate, p.Requests)
	}
	r.Record(0, EndpointWallet, time.Millisecond, "")
	tail := r.FlushIntoLast(1100*time.Millisecond, 600*time.Millisecond, 0)
	if tl := r.Timeline(); len(tl) != 2 || !reflect.DeepEqual(tl[1], tail) || tail.Requests != p.Requests+1 || tail.ElapsedMS != 1100 {
		t.Fatalf("tail %+v, timeline %+v", tail, r.Timeline())
	}
	if names := tot.Names(); len(names) != 2 || names[0] != EndpointWallet || names[1] != EndpointPurchase {
		t.Fatalf("Names() = %v, want report order", names)
	}
}
