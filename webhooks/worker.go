package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// DefaultSchedule is the wait before each retry: 12 attempts over about
// 31.7 hours (each wait ±10% jitter), then the delivery fails.
var DefaultSchedule = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute,
	30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 8 * time.Hour, 8 * time.Hour}

// Options configure a Worker; zero fields take the defaults named.
type Options struct {
	// Timeout bounds one HTTP attempt (10s).
	Timeout time.Duration
	// Concurrency is how many deliveries one worker posts at once (8).
	Concurrency int
	// Poll is the wait between rounds that found nothing to do (1s).
	Poll time.Duration
	// Lease is how long a claimed delivery is reserved (2×Timeout + 5s);
	// after it another worker takes the delivery over.
	Lease time.Duration
	// Schedule is the wait before each retry (DefaultSchedule).
	Schedule []time.Duration
	// DisableAfter disables an endpoint whose every attempt has failed for
	// this long (72h).
	DisableAfter time.Duration
	// Client posts the webhooks; nil means one with Timeout that follows no
	// redirects.
	Client *http.Client
	Logger *slog.Logger
}

// Envelope is the body of every webhook.
type Envelope struct {
	// ID is the event's id, as in the pull feed and the webhook-id header.
	ID        int64           `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	PlayerID  *string         `json:"player_id"`
	Data      json.RawMessage `json:"data"`
}

// Worker fans events out into deliveries and delivers them.
type Worker struct {
	db   *pgxpool.Pool
	opt  Options
	log  *slog.Logger
	Stat Stats

	attempts *prometheus.CounterVec
	failed   prometheus.Counter
	lag      prometheus.Histogram
}

// Collectors are the worker's metrics, for /metrics.
func (w *Worker) Collectors() []prometheus.Collector {
	return []prometheus.Collector{w.attempts, w.failed, w.lag}
}

// Stats counts what a worker did, for metrics and tests.
type Stats struct {
	mu                            sync.Mutex
	Attempts, Delivered, Failures int64
}

func (s *Stats) add(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Attempts++
	if ok {
		s.Delivered++
	} else {
		s.Failures++
	}
}

// NewWorker returns a worker on db.
func NewWorker(db *pgxpool.Pool, opt Options) *Worker {
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.Concurrency <= 0 {
		opt.Concurrency = 8
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	if opt.Lease <= 0 {
		opt.Lease = 2*opt.Timeout + 5*time.Second
	}
	if len(opt.Schedule) == 0 {
		opt.Schedule = DefaultSchedule
	}
	if opt.DisableAfter <= 0 {
		opt.DisableAfter = 72 * time.Hour
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Timeout: opt.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Worker{db: db, opt: opt, log: opt.Logger,
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "coinop", Name: "webhook_attempts_total",
			Help: "Webhook delivery attempts by result (delivered or failed)."}, []string{"result"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "coinop", Name: "webhook_deliveries_failed_total",
			Help: "Webhook deliveries given up after the whole retry schedule."}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "coinop", Name: "webhook_delivery_lag_seconds",
			Help:    "Time from an event's commit to its successful delivery.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600}}),
	}
}

// Run works until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := w.Round(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("webhooks: round failed", slog.Any("error", err))
		}
		if n > 0 && err == nil {
			continue
		}
		t := time.NewTimer(w.opt.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// Round fans out new events, then claims and delivers up to Concurrency
// due deliveries; it returns how many it attempted.
func (w *Worker) Round(ctx context.Context) (int, error) {
	if err := w.fanOut(ctx); err != nil {
		return 0, err
	}
	claimed, err := w.claim(ctx, w.opt.Concurrency)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, c := range claimed {
		wg.Go(func() { w.deliver(ctx, c) })
	}
	wg.Wait()
	return len(claimed), nil
}

// fanOut turns the events after each enabled endpoint's cursor into
// deliveries, in one statement; endpoints another replica is fanning out
// are skipped.
func (w *Worker) fanOut(ctx context.Context) error {
	_, err := w.db.Exec(ctx, `WITH ep AS (
			SELECT id, cursor, event_types FROM webhook_endpoints WHERE enabled FOR UPDATE SKIP LOCKED),
		ev AS (
			SELECT ep.id AS endpoint_id, e.id AS event_id, e.type, ep.event_types FROM ep
			CROSS JOIN LATERAL (SELECT id, type FROM events WHERE id > ep.cursor ORDER BY id LIMIT 1000) e),
		ins AS (
			INSERT INTO webhook_deliveries (endpoint_id, event_id)
			SELECT endpoint_id, event_id FROM ev WHERE `+matchSQL("type", "event_types")+`
			ON CONFLICT (endpoint_id, event_id) DO NOTHING)
		UPDATE webhook_endpoints w SET cursor = m.last
		FROM (SELECT endpoint_id, max(event_id) AS last FROM ev GROUP BY endpoint_id) m WHERE w.id = m.endpoint_id`)
	if err != nil {
		return fmt.Errorf("webhooks: fan out: %w", err)
	}
	return nil
}

type claimed struct {
	id, endpointID int64
	attempts       int
	token          string
	url            string
	secrets        []string
	event          Envelope
}

// claim leases up to n due deliveries of enabled endpoints.
func (w *Worker) claim(ctx context.Context, n int) ([]claimed, error) {
	rows, err := w.db.Query(ctx, `WITH c AS (
			UPDATE webhook_deliveries d SET attempts = attempts + 1, lease_until = now() + $2::interval, lease_token = gen_random_uuid()
			WHERE d.id IN (SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints ep ON ep.id = d.endpoint_id
				WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND (d.lease_until IS NULL OR d.lease_until < now()) AND ep.enabled
				ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED)
			RETURNING d.id, d.endpoint_id, d.event_id, d.attempts, d.lease_token)
		SELECT c.id, c.endpoint_id, c.attempts, c.lease_token::text, ep.url, ep.secret,
			CASE WHEN ep.previous_secret_until > now() THEN ep.previous_secret END,
			e.id, e.type, e.created_at, e.player_id, e.data
		FROM c JOIN webhook_endpoints ep ON ep.id = c.endpoint_id JOIN events e ON e.id = c.event_id`, n, w.opt.Lease.String())
	if err != nil {
		return nil, fmt.Errorf("webhooks: claim: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimed, error) {
		var c claimed
		var secret string
		var prev *string
		err := r.Scan(&c.id, &c.endpointID, &c.attempts, &c.token, &c.url, &secret, &prev,
			&c.event.ID, &c.event.Type, &c.event.Timestamp, &c.event.PlayerID, &c.event.Data)
		c.event.Timestamp = c.event.Timestamp.UTC()
		c.secrets = []string{secret}
		if prev != nil {
			c.secrets = append(c.secrets, *prev)
		}
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("webhooks: claim: %w", err)
	}
	return out, nil
}

// Sign returns the Standard Webhooks headers of body, signed with every
// secret (space-separated signatures), using the reference library.
func Sign(msgID string, at time.Time, body []byte, secrets ...string) (http.Header, error) {
	var sigs []string
	for _, s := range secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			return nil, fmt.Errorf("webhooks: secret: %w", err)
		}
		sig, err := wh.Sign(msgID, at, body)
		if err != nil {
			return nil, fmt.Errorf("webhooks: sign: %w", err)
		}
		sigs = append(sigs, sig)
	}
	h := http.Header{}
	h.Set("webhook-id", msgID)
	h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("webhook-signature", strings.Join(sigs, " "))
	return h, nil
}

// deliver posts one claimed delivery (no connection held) and records the
// result, fenced by the lease token.
func (w *Worker) deliver(ctx context.Context, c claimed) {
	status, errText := w.post(ctx, c)
	ok := status >= 200 && status < 300
	w.Stat.add(ok)
	if ok {
		w.attempts.WithLabelValues("delivered").Inc()
		w.lag.Observe(time.Since(c.event.Timestamp).Seconds())
	} else {
		w.attempts.WithLabelValues("failed").Inc()
		if c.attempts > len(w.opt.Schedule) {
			w.failed.Inc()
		}
	}
	var err error
	if ok {
		_, err = w.db.Exec(ctx, `WITH d AS (UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), last_status = $3,
				last_error = '', lease_until = NULL, lease_token = NULL WHERE id = $1 AND lease_token = $2::uuid RETURNING endpoint_id)
			UPDATE webhook_endpoints SET failing_since = NULL WHERE id IN (SELECT endpoint_id FROM d) AND failing_since IS NOT NULL`, c.id, c.token, status)
	} else {
		final := c.attempts > len(w.opt.Schedule)
		wait := time.Duration(0)
		if !final {
			base := w.opt.Schedule[c.attempts-1]
			wait = base + time.Duration((rand.Float64()*0.2-0.1)*float64(base))
		}
		var st *int
		if status != 0 {
			st = &status
		}
		_, err = w.db.Exec(ctx, `WITH d AS (UPDATE webhook_deliveries SET status = CASE WHEN $3 THEN 'failed' ELSE 'pending' END,
				next_attempt_at = now() + $4::interval, last_status = $5, last_error = $6, lease_until = NULL, lease_token = NULL
				WHERE id = $1 AND lease_token = $2::uuid RETURNING endpoint_id)
			UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now()),
				enabled = CASE WHEN failing_since < now() - $7::interval THEN false ELSE enabled END,
				disabled_reason = CASE WHEN failing_since < now() - $7::interval THEN 'every attempt failed for ' || $8 ELSE disabled_reason END
			WHERE id IN (SELECT endpoint_id FROM d)`, c.id, c.token, final, wait.String(), st, errText, w.opt.DisableAfter.String(), w.opt.DisableAfter.String())
	}
	if err != nil && ctx.Err() == nil {
		w.log.Warn("webhooks: recording a delivery failed", slog.Int64("delivery", c.id), slog.Any("error", err))
	}
}

func (w *Worker) post(ctx context.Context, c claimed) (int, string) {
	body, err := json.Marshal(c.event)
	if err != nil {
		return 0, "encode: " + err.Error()
	}
	h, err := Sign(strconv.FormatInt(c.event.ID, 10), time.Now(), body, c.secrets...)
	if err != nil {
		return 0, err.Error()
	}
	rctx, cancel := context.WithTimeout(ctx, w.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return 0, "request: " + err.Error()
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "coinop-webhooks/1")
	resp, err := w.opt.Client.Do(req)
	if err != nil {
		return 0, truncate(err.Error())
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	return resp.StatusCode, ""
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300]
	}
	return s
}
