package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/internal/testenv"
	"github.com/coinop/coinop/loadtest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestMissingToolsNameThePackageToInstall(t *testing.T) {
	lookPath := func(bin string) (string, error) {
		if bin == "pgbench" {
			return "", errors.New("not found")
		}
		return "/usr/bin/" + bin, nil
	}
	err := requireTools(lookPath)
	if err == nil || !strings.Contains(err.Error(), "pgbench (install the package postgresql-client") || strings.Contains(err.Error(), "redis-tools") {
		t.Fatalf("err = %v, want one naming pgbench and postgresql-client only", err)
	}
	none := func(string) (string, error) { return "", errors.New("not found") }
	if err := requireTools(none); err == nil || !strings.Contains(err.Error(), "postgresql-client") || !strings.Contains(err.Error(), "redis-tools") {
		t.Fatalf("err = %v, want both packages named", err)
	}
	all := func(bin string) (string, error) { return "/usr/bin/" + bin, nil }
	if err := requireTools(all); err != nil {
		t.Fatal(err)
	}
}

func TestTheServerGetsNoCoinopSettingsFromTheCallersEnvironment(t *testing.T) {
	got := withoutCoinopEnv([]string{"PATH=/bin", "COINOP_STORES=fake", "HOME=/root", "COINOP_RATE_LIMIT=1/s"})
	if !slices.Equal(got, []string{"PATH=/bin", "HOME=/root"}) {
		t.Fatalf("got %v", got)
	}
}

func TestMeasurementFromReport(t *testing.T) {
	rep := &loadtest.Report{
		Dropped:  3,
		WindowMS: 2000,
		Endpoints: []loadtest.EndpointReport{
			{Name: loadtest.EndpointPurchase, Count: 1000, Rate: 498.5, P50US: 1200, P99US: 8000, Errors: 2},
		},
	}
	m, err := measurementFromReport(rep, loadtest.EndpointPurchase, 500)
	if err != nil {
		t.Fatal(err)
	}
	want := Measurement{Target: 500, Achieved: 498.5, Requests: 1000, Errors: 2, Dropped: 3, P50: 1200 * time.Microsecond, P99: 8 * time.Millisecond, Window: 2 * time.Second}
	if m != want {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
	rep.Notes = []string{"scenario entitlement_check skipped: no server token"}
	if _, err := measurementFromReport(rep, loadtest.EndpointEntitlementCheck, 500); err == nil || !strings.Contains(err.Error(), "no server token") {
		t.Fatalf("err = %v, want the report's notes", err)
	}
}

// The paired purchase targets are saturated one after another, in
// alternating order, so that the drift through a bench cancels in their
// round-by-round ratio instead of counting against whichever comes later.
func TestPairedTargetsSaturateSideBySideInAlternatingOrder(t *testing.T) {
	sat := unthrottled{}
	targets := []target{
		{Label: "reference", SatRunner: sat},
		{Label: "plain", SatRunner: sat, Paired: true},
		{Label: "hot", SatRunner: sat},
		{Label: "no saturation"},
		{Label: "coded", SatRunner: sat, Paired: true},
		{Label: "one creator", SatRunner: sat, Paired: true},
	}
	labels := func(order []int) []string {
		var out []string
		for _, i := range order {
			out = append(out, targets[i].Label)
		}
		return out
	}
	even := []string{"reference", "hot", "plain", "coded", "one creator"}
	odd := []string{"one creator", "coded", "plain", "hot", "reference"}
	for round, want := range [][]string{even, odd, even, odd} {
		if got := labels(saturationOrder(targets, round)); !slices.Equal(got, want) {
			t.Errorf("round %d: order %v, want %v", round, got, want)
		}
	}
}
