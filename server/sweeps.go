package server

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/stores"
)

// StoreSweepOptions configure the reconciliation sweep (see
// stores.SweepOptions).
type StoreSweepOptions = stores.SweepOptions

// StoreSweeper returns the reconciliation sweep (stores.Sweeper) over the
// server's ledger and stores.
func (s *Server) StoreSweeper(o StoreSweepOptions) *stores.Sweeper { return s.stores.Sweeper(o) }

type storeSweepsResponse struct {
	Sweeps []entitlements.StoreSweep `json:"sweeps"`
}

// getStoreSweeps answers GET /admin/v1/store-sweeps: the state of each
// store's reconciliation sweep, as every replica sees it (Postgres).
func (s *Server) getStoreSweeps(c *fiber.Ctx) error {
	sw, err := s.stores.StoreSweeps(c.UserContext())
	if err != nil {
		return err
	}
	if sw == nil {
		sw = []entitlements.StoreSweep{}
	}
	return c.JSON(storeSweepsResponse{Sweeps: sw})
}

// sweepCollector exports the sweep state at scrape time. The counts live in
// Postgres, so every replica reports the same totals, whichever ran the
// sweeps.
type sweepCollector struct{ ledger *entitlements.Ledger }

var (
	sweepRuns     = prometheus.NewDesc("coinop_store_sweep_runs_total", "Reconciliation sweeps run, by store.", []string{"store"}, nil)
	sweepFailures = prometheus.NewDesc("coinop_store_sweep_failures_total", "Reconciliation sweeps that failed, by store.", []string{"store"}, nil)
	sweepFound    = prometheus.NewDesc("coinop_store_sweep_found_total", "Store records the sweeps read, by store.", []string{"store"}, nil)
	sweepApplied  = prometheus.NewDesc("coinop_store_sweep_applied_total", "Store records the sweeps found missing from the inbox and added, by store.", []string{"store"}, nil)
	sweepCursor   = prometheus.NewDesc("coinop_store_sweep_cursor_timestamp_seconds", "End of the last successful sweep, by store.", []string{"store"}, nil)
	sweepNext     = prometheus.NewDesc("coinop_store_sweep_next_run_timestamp_seconds", "When the next sweep is due, by store.", []string{"store"}, nil)
	sweepFailing  = prometheus.NewDesc("coinop_store_sweep_last_failed", "1 when the last sweep of the store failed.", []string{"store"}, nil)
)

func (sweepCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sweepRuns, sweepFailures, sweepFound, sweepApplied, sweepCursor, sweepNext, sweepFailing} {
		ch <- d
	}
}

func (p sweepCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sweeps, err := p.ledger.StoreSweeps(ctx)
	if err != nil {
		return // the scrape goes on without them; /readyz reports the database
	}
	for _, s := range sweeps {
		ch <- prometheus.MustNewConstMetric(sweepRuns, prometheus.CounterValue, float64(s.Runs), s.Store)
		ch <- prometheus.MustNewConstMetric(sweepFailures, prometheus.CounterValue, float64(s.Failures), s.Store)
		ch <- prometheus.MustNewConstMetric(sweepFound, prometheus.CounterValue, float64(s.Found), s.Store)
		ch <- prometheus.MustNewConstMetric(sweepApplied, prometheus.CounterValue, float64(s.Applied), s.Store)
		if s.Cursor != nil {
			ch <- prometheus.MustNewConstMetric(sweepCursor, prometheus.GaugeValue, float64(s.Cursor.Unix()), s.Store)
		}
		ch <- prometheus.MustNewConstMetric(sweepNext, prometheus.GaugeValue, float64(s.NextRunAt.Unix()), s.Store)
		failed := 0.0
		if s.LastError != "" {
			failed = 1
		}
		ch <- prometheus.MustNewConstMetric(sweepFailing, prometheus.GaugeValue, failed, s.Store)
	}
}
