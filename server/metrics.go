package server

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	registry *prometheus.Registry
	latency  *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry, db *pgxpool.Pool) *metrics {
	m := &metrics{
		registry: reg,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "coinop",
			Name:      "http_request_duration_seconds",
			Help:      "Latency of HTTP requests by route template, method and status.",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route", "status"}),
	}
	reg.MustRegister(m.latency)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if db != nil {
		reg.MustRegister(poolCollector{db})
	}
	return m
}

func (m *metrics) observe(method, route string, status int, elapsed time.Duration) {
	m.latency.WithLabelValues(method, route, strconv.Itoa(status)).Observe(elapsed.Seconds())
}

func (m *metrics) handler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
}

// poolCollector exports pgxpool statistics at scrape time.
type poolCollector struct{ db *pgxpool.Pool }

var (
	poolTotal    = prometheus.NewDesc("coinop_db_pool_connections", "Connections in the Postgres pool by state.", []string{"state"}, nil)
	poolMax      = prometheus.NewDesc("coinop_db_pool_max_connections", "Most connections the Postgres pool may open.", nil, nil)
	poolAcquires = prometheus.NewDesc("coinop_db_pool_acquires_total", "Connections acquired from the pool.", nil, nil)
	poolEmpty    = prometheus.NewDesc("coinop_db_pool_empty_acquires_total", "Acquires that had to wait because the pool was empty.", nil, nil)
	poolWait     = prometheus.NewDesc("coinop_db_pool_acquire_wait_seconds_total", "Time spent waiting for pool connections.", nil, nil)
)

func (p poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolTotal
	ch <- poolMax
	ch <- poolAcquires
	ch <- poolEmpty
	ch <- poolWait
}

func (p poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := p.db.Stat()
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(st.AcquiredConns()), "acquired")
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(st.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(st.ConstructingConns()), "constructing")
	ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(st.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolAcquires, prometheus.CounterValue, float64(st.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolEmpty, prometheus.CounterValue, float64(st.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolWait, prometheus.CounterValue, st.AcquireDuration().Seconds())
}
