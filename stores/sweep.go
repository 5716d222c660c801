package stores

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/receipts"
)

// The reconciliation sweep repairs what a lost notification missed: every
// interval one replica (a lease in Postgres, table store_sweeps) reads
// Google Play's Voided Purchases API and Apple's Get Notification History
// and feeds what it finds into the same durable inbox the notifications
// use, where the store worker acts on it as on a notification. Entries are
// de-duplicated by id: Apple's notificationUUID (the same as the push's),
// Google's "voided:<orderId>:<voidedTimeMillis>". Each sweep reads from its
// cursor (the end of the last successful sweep) minus Lookback, because
// both stores list some records late; reading a span twice is harmless.

// SweepOptions configure the sweep; zero values take the defaults.
type SweepOptions struct {
	// Interval between sweeps of one store (default 1h).
	Interval time.Duration
	// Lookback is how far before the cursor each sweep starts reading, and
	// how far back the first one reads (default 72h; Google keeps 30 days,
	// Apple 180).
	Lookback time.Duration
	// Lease is how long one replica holds a sweep (default 10m).
	Lease time.Duration
	// GoogleVoided lists Google's voided purchases; nil: Google is not
	// swept. Apple is swept when the service has an App Store Server API
	// client (Verifiers.AppleAPI).
	GoogleVoided receipts.VoidedPurchasesAPI
	// Now defaults to time.Now.
	Now func() time.Time
}

// Sweeper runs the reconciliation sweep.
type Sweeper struct {
	s   *Service
	opt SweepOptions
}

// Sweep store names (store_sweeps.store).
const (
	SweepApple  = "apple"
	SweepGoogle = "google"
)

// maxSweepPages bounds one sweep of one store; the rest is read next time
// (the cursor does not move past what was not read).
const maxSweepPages = 100

// Sweeper returns the reconciliation sweep over the service's stores.
func (s *Service) Sweeper(o SweepOptions) *Sweeper {
	if o.Interval <= 0 {
		o.Interval = time.Hour
	}
	if o.Lookback <= 0 {
		o.Lookback = 72 * time.Hour
	}
	if o.Lease <= 0 {
		o.Lease = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Sweeper{s: s, opt: o}
}

// Stores lists the stores this sweeper reads.
func (sw *Sweeper) Stores() []string {
	var out []string
	if sw.s.v.Apple != nil && sw.s.v.AppleAPI != nil {
		out = append(out, SweepApple)
	}
	if sw.s.v.Google != nil && sw.opt.GoogleVoided != nil {
		out = append(out, SweepGoogle)
	}
	return out
}

// Run sweeps every store when it is due until ctx ends, looking every
// minute (or every Interval, when shorter) whether one is.
func (sw *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(min(sw.opt.Interval, time.Minute))
	defer t.Stop()
	for {
		if _, err := sw.RunOnce(ctx); err != nil && ctx.Err() == nil {
			sw.s.log.Warn("store sweep failed; the next one reads the same span", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SweepResult is what one sweep of one store did.
type SweepResult struct {
	Store string
	// Found counts the store records read; Applied those new to the inbox.
	Found, Applied int64
	Err            error
}

// RunOnce sweeps each store that is due and not leased by another replica,
// and returns what each did. The error joins the sweeps' errors; a failed
// sweep keeps its cursor, so the next reads the same span again.
func (sw *Sweeper) RunOnce(ctx context.Context) ([]SweepResult, error) {
	var results []SweepResult
	var errs []error
	for _, store := range sw.Stores() {
		lease, ok, err := sw.s.ledger.ClaimSweep(ctx, store, sw.opt.Lease)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		until := sw.opt.Now().UTC()
		from := until.Add(-sw.opt.Lookback)
		if lease.Cursor != nil {
			from = lease.Cursor.Add(-sw.opt.Lookback)
		}
		// The sweep gets its own deadline inside the lease, so a replica
		// never sweeps past it while another takes over.
		sctx, cancel := context.WithTimeout(ctx, sw.opt.Lease)
		r := SweepResult{Store: store}
		switch store {
		case SweepGoogle:
			r.Found, r.Applied, r.Err = sw.sweepGoogle(sctx, from, until)
		case SweepApple:
			r.Found, r.Applied, r.Err = sw.sweepApple(sctx, from, until)
		}
		cancel()
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("sweep %s: %w", store, r.Err))
		}
		// Finish even when ctx ended, so the lease is released.
		if err := sw.s.ledger.FinishSweep(context.WithoutCancel(ctx), lease, until, r.Found, r.Applied, sw.opt.Interval, r.Err); err != nil {
			errs = append(errs, err)
		}
		sw.s.log.Info("store sweep", slog.String("store", store), slog.Int64("found", r.Found), slog.Int64("applied", r.Applied),
			slog.Time("from", from), slog.Time("until", until), slog.Any("error", r.Err))
		results = append(results, r)
	}
	return results, errors.Join(errs...)
}

// sweepGoogle reads the voided purchases of [from, until] into the inbox
// as voided purchase notifications.
func (sw *Sweeper) sweepGoogle(ctx context.Context, from, until time.Time) (found, applied int64, err error) {
	token := ""
	for range maxSweepPages {
		page, err := sw.s.v.Google.VoidedPurchases(ctx, sw.opt.GoogleVoided, from, until, token)
		if err != nil {
			return found, applied, err
		}
		for _, v := range page.Purchases {
			found++
			id, body, err := voidedNotification(sw.s.v.Google.PackageName(), v)
			if err != nil {
				return found, applied, err
			}
			dup, err := sw.s.ledger.ReceiveNotification(ctx, string(receipts.StoreGoogle), id, "VOIDED_PURCHASE", body)
			if err != nil {
				return found, applied, err
			}
			if !dup {
				applied++
			}
		}
		if page.NextToken == "" {
			return found, applied, nil
		}
		token = page.NextToken
	}
	return found, applied, fmt.Errorf("more than %d pages of voided purchases; the rest next time", maxSweepPages)
}

// voidedNotification is the inbox entry for a voided purchase the sweep
// found: a Pub/Sub push body like the one Play would have sent, so the
// worker reads both alike. Attributes say it came from the sweep.
func voidedNotification(pkg string, v receipts.VoidedPurchase) (id string, body []byte, err error) {
	order := v.OrderID
	if order == "" {
		order = v.PurchaseToken
	}
	id = "voided:" + order + ":" + strconv.FormatInt(v.VoidedAt.UnixMilli(), 10)
	if len(id) > 200 {
		id = id[:200]
	}
	refundType := 1
	if v.VoidedQuantity > 0 {
		refundType = 2 // quantity-based partial refund
	}
	data, err := json.Marshal(map[string]any{
		"version": "1.0", "packageName": pkg, "eventTimeMillis": strconv.FormatInt(max(v.VoidedAt.UnixMilli(), 1), 10),
		"voidedPurchaseNotification": map[string]any{"purchaseToken": v.PurchaseToken, "orderId": v.OrderID, "refundType": refundType},
	})
	if err != nil {
		return "", nil, err
	}
	body, err = json.Marshal(map[string]any{
		"message": map[string]any{
			"data": base64.StdEncoding.EncodeToString(data), "messageId": id,
			"attributes": map[string]string{
				"coinop_source": "sweep", "voided_quantity": strconv.FormatInt(v.VoidedQuantity, 10),
				"voided_reason": strconv.FormatInt(v.Reason, 10), "voided_source": strconv.FormatInt(v.Source, 10),
			},
		},
		"subscription": "coinop:store-sweep",
	})
	return id, body, err
}

// sweepApple reads Apple's notification history of [from, until] into the
// inbox, each notification verified as when Apple pushes it.
func (sw *Sweeper) sweepApple(ctx context.Context, from, until time.Time) (found, applied int64, err error) {
	token := ""
	for range maxSweepPages {
		page, err := sw.s.v.AppleAPI.NotificationHistory(ctx, from, until, token)
		if err != nil {
			return found, applied, err
		}
		for _, payload := range page.SignedPayloads {
			found++
			body, err := json.Marshal(map[string]string{"signedPayload": payload})
			if err != nil {
				return found, applied, err
			}
			rec, err := sw.s.ReceiveApple(ctx, body)
			switch {
			case receipts.ReasonOf(err) != "":
				// Not a notification this deployment accepts (another
				// bundle, a bad signature): the push would have been
				// refused too.
				sw.s.log.Warn("store sweep: an App Store notification from the history was refused", slog.Any("error", err))
				continue
			case err != nil:
				return found, applied, err
			}
			if !rec.Duplicate {
				applied++
			}
		}
		if !page.HasMore {
			return found, applied, nil
		}
		token = page.NextToken
	}
	return found, applied, fmt.Errorf("more than %d pages of notification history; the rest next time", maxSweepPages)
}

// StoreSweeps returns the state of the sweeps (for the admin API and the
// metrics).
func (s *Service) StoreSweeps(ctx context.Context) ([]entitlements.StoreSweep, error) {
	return s.ledger.StoreSweeps(ctx)
}
