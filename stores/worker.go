package stores

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/receipts"
)

// WorkerOptions tune the store worker; zero values take the defaults.
type WorkerOptions struct {
	// Policy decides what refunds do with currency already spent (default
	// clamp).
	Policy entitlements.ClawbackPolicy
	// Interval between rounds (default 5s).
	Interval time.Duration
	// AckDelay is how old an unacknowledged Google grant must be before the
	// worker takes over from the request that made it (default 1m).
	AckDelay time.Duration
	// Batch is how many notifications one claim leases (default 50).
	Batch int
	// Lease is how long a claimed notification is hidden from other
	// replicas (default 2m).
	Lease time.Duration
	// ConsumptionInfo answers Apple's CONSUMPTION_REQUEST with Send
	// Consumption Information built from the ledger (COINOP_APPLE_CONSUMPTION_INFO;
	// needs the App Store Server API and the players' consent). Off: the
	// request is recorded and acknowledged only.
	ConsumptionInfo bool
}

// Worker processes the store notification inbox (refunds, revocations,
// renewals) and acknowledges Google Play purchases that were granted but
// not acknowledged, for example because the process stopped between the
// commit and the acknowledgement. Every replica may run one: notifications
// are leased, and acknowledging twice is harmless.
type Worker struct {
	s   *Service
	opt WorkerOptions
}

// Worker returns a worker using the service's ledger, catalog and stores.
func (s *Service) Worker(o WorkerOptions) *Worker {
	if o.Policy == "" {
		o.Policy = entitlements.ClawbackClamp
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.AckDelay < 0 {
		o.AckDelay = 0
	} else if o.AckDelay == 0 {
		o.AckDelay = time.Minute
	}
	if o.Batch <= 0 {
		o.Batch = 50
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	return &Worker{s: s, opt: o}
}

// Run processes rounds every Interval until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(w.opt.Interval)
	defer t.Stop()
	for {
		if err := w.RunOnce(ctx); err != nil && ctx.Err() == nil {
			w.s.log.Warn("store worker round failed", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maxClaimRounds bounds one RunOnce, so a flood of notifications cannot
// starve the acknowledgements.
const maxClaimRounds = 20

// RunOnce processes every due notification and every pending Google
// acknowledgement older than AckDelay, once. Processing failures are
// recorded on the notification and retried later with backoff; the error
// returned is about the inbox or the ledger themselves.
func (w *Worker) RunOnce(ctx context.Context) error {
	var errs []error
	for range maxClaimRounds {
		ns, err := w.s.ledger.ClaimNotifications(ctx, w.opt.Batch, w.opt.Lease)
		if err != nil {
			errs = append(errs, err)
			break
		}
		for _, n := range ns {
			perr := w.process(ctx, n)
			if perr != nil {
				w.s.log.Warn("store notification failed; will retry",
					slog.String("store", n.Store), slog.String("notification_id", n.NotificationID),
					slog.String("kind", n.Kind), slog.Int("attempts", n.Attempts), slog.Any("error", perr))
			}
			if err := w.s.ledger.FinishNotification(ctx, n, perr); err != nil {
				errs = append(errs, err)
			}
		}
		if len(ns) < w.opt.Batch {
			break
		}
	}
	if w.s.v.Google != nil {
		if err := w.acknowledgePending(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *Worker) process(ctx context.Context, n entitlements.StoreNotification) error {
	switch n.Store {
	case string(receipts.StoreApple):
		if w.s.v.Apple == nil {
			return errors.New("the App Store is not configured (COINOP_STORES)")
		}
		return w.processApple(ctx, n)
	case string(receipts.StoreGoogle):
		if w.s.v.Google == nil {
			return errors.New("google play is not configured (COINOP_STORES)")
		}
		return w.processGoogle(ctx, n)
	}
	return fmt.Errorf("unknown store %q", n.Store)
}

// note logs why a notification was processed without changing anything.
func (w *Worker) note(ctx context.Context, n entitlements.StoreNotification, msg string, attrs ...slog.Attr) {
	attrs = append([]slog.Attr{slog.String("store", n.Store), slog.String("notification_id", n.NotificationID), slog.String("kind", n.Kind)}, attrs...)
	w.s.log.LogAttrs(ctx, slog.LevelInfo, "store notification: "+msg, attrs...)
}

// processApple acts on an App Store notification. It is verified again: the
// inbox keeps the signed payload, not our reading of it.
func (w *Worker) processApple(ctx context.Context, n entitlements.StoreNotification) error {
	an, err := w.s.v.Apple.VerifyNotification(n.Body, receipts.VerifyOptions{AllowSandbox: true})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	p := an.Purchase
	switch an.Type {
	case "REFUND", "REVOKE", "REFUND_REVERSED":
		if p == nil {
			w.note(ctx, n, "no transaction to revoke")
			return nil
		}
		return w.revokeApple(ctx, n, an, p)
	case "CONSUMPTION_REQUEST":
		return w.answerConsumption(ctx, n, an)
	}
	if p == nil {
		return nil // TEST, summaries, RESCIND_CONSENT, EXTERNAL_PURCHASE_TOKEN, unknown types: recorded only
	}
	rec, found, err := w.owner(ctx, n, receipts.StoreApple, p.OriginalTransactionID)
	if !found {
		return err
	}
	// Sandbox renewals count only for testers, as sandbox purchases do.
	if !w.s.v.Apple.EnvironmentAllowed(p.Environment, w.s.isTester(rec.PlayerID)) || rec.Environment != string(p.Environment) {
		w.note(ctx, n, "transaction from an environment this player may not use; ignored",
			slog.String("player_id", rec.PlayerID), slog.String("environment", string(p.Environment)))
		return nil
	}
	if an.Type == "DID_RENEW" || an.Type == "SUBSCRIBED" {
		if err := w.grantRenewal(ctx, n, rec.PlayerID, p); err != nil {
			return err
		}
	}
	// EXPIRED, DID_FAIL_TO_RENEW, GRACE_PERIOD_EXPIRED, ...: the status the
	// notification carries decides whether the subscription grants.
	var grace *time.Time
	if an.Renewal != nil {
		grace = an.Renewal.GracePeriodExpiresAt
	}
	return w.applySubscription(ctx, n, p, grace)
}

// applySubscription records the store's state of a subscription purchase:
// only active and grace-period subscriptions grant their items, until their
// expiry (for a grace period, its end).
func (w *Worker) applySubscription(ctx context.Context, n entitlements.StoreNotification, p *receipts.Purchase, graceEnds *time.Time) error {
	if p.SubscriptionState == "" || (p.Type != receipts.ProductAutoRenewable && p.Type != receipts.ProductNonRenewing) {
		return nil
	}
	state, expires := p.SubscriptionState, p.ExpiresAt
	switch state {
	case receipts.SubCanceled:
		state = receipts.SubActive // will not renew, but holds until it expires
	case receipts.SubGracePeriod:
		if graceEnds != nil {
			expires = graceEnds
		}
	}
	err := w.s.ledger.UpdateSubscription(ctx, string(p.Store), p.OriginalTransactionID, expires, state)
	if errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		w.note(ctx, n, "no subscription recorded for this purchase", slog.String("original_transaction_id", p.OriginalTransactionID))
		return nil
	}
	return err
}

// owner finds the recorded purchase a notification is about (by Apple's
// original transaction id or Google's purchase token); found is false, with
// a note, when the game has not redeemed it here yet.
func (w *Worker) owner(ctx context.Context, n entitlements.StoreNotification, store receipts.Store, id string) (rec entitlements.StorePurchaseRecord, found bool, err error) {
	if id == "" {
		w.note(ctx, n, "no original transaction")
		return rec, false, nil
	}
	rec, err = w.s.ledger.FindSubscriptionPurchase(ctx, string(store), id)
	if errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		w.note(ctx, n, "purchase never redeemed here (the game redeems it)", slog.String("original", id))
		return rec, false, nil
	}
	return rec, err == nil, err
}

// grantRenewal redeems a renewal transaction for the player who owns the
// subscription.
func (w *Worker) grantRenewal(ctx context.Context, n entitlements.StoreNotification, player string, p *receipts.Purchase) error {
	if p.RevokedAt != nil {
		w.note(ctx, n, "renewal already revoked; not granted", slog.String("transaction_id", p.TransactionID))
		return nil
	}
	_, err := w.s.redeem(ctx, player, p)
	switch {
	case errors.Is(err, entitlements.ErrReceiptOwnedByAnotherPlayer):
		w.note(ctx, n, "renewal already redeemed by another player", slog.String("transaction_id", p.TransactionID))
		return nil
	case err != nil && receipts.ReasonOf(err) != "":
		w.note(ctx, n, "renewal not granted", slog.String("transaction_id", p.TransactionID), slog.Any("error", err))
		return nil
	}
	return err
}

// storeErr reports whether err is the store's (or our configuration's)
// rather than the input's.
func storeErr(err error) bool {
	return errors.Is(err, receipts.ErrStoreUnavailable) || errors.Is(err, receipts.ErrMisconfigured)
}

// retryable returns err when the store or our configuration failed (retry
// later); an answer about the purchase itself is final and only noted.
func retryable(ctx context.Context, w *Worker, n entitlements.StoreNotification, err error) error {
	if storeErr(err) {
		return err
	}
	w.note(ctx, n, "the store refused the purchase", slog.Any("error", err))
	return nil
}

// ackBatch bounds the acknowledgements attempted in one round.
const ackBatch = 100

// acknowledgePending acknowledges (or consumes) Google purchases whose grant
// committed without the acknowledgement that should have followed.
func (w *Worker) acknowledgePending(ctx context.Context) error {
	recs, err := w.s.ledger.PendingAcknowledgements(ctx, ackBatch)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, rec := range recs {
		if now.Sub(rec.CreatedAt) < w.opt.AckDelay {
			continue
		}
		p := &receipts.Purchase{Store: receipts.StoreGoogle, TransactionID: rec.TransactionID, ProductID: rec.ProductID, PurchaseToken: rec.PurchaseToken}
		if rec.ExpiresAt != nil {
			p.Type = receipts.ProductAutoRenewable
		}
		err := w.s.settle(ctx, p, rec.Consumable)
		if receipts.ReasonOf(err) != "" {
			// Play refused: perhaps it was acknowledged or consumed already
			// (by the request, another replica, or the game). Ask.
			err = w.confirmAcknowledged(ctx, p, err)
		}
		if err != nil {
			// The backoff lives in Postgres, so every replica honours it and
			// failing purchases never starve newer ones.
			if ferr := w.s.ledger.AcknowledgeFailed(ctx, rec.Store, rec.TransactionID); ferr != nil {
				return ferr
			}
			w.s.log.Warn("google acknowledgement failed; will retry", slog.String("transaction_id", rec.TransactionID), slog.Any("error", err))
		}
	}
	return nil
}

// confirmAcknowledged marks p acknowledged when Play says it is; else it
// returns ackErr.
func (w *Worker) confirmAcknowledged(ctx context.Context, p *receipts.Purchase, ackErr error) error {
	opt := receipts.VerifyOptions{AllowSandbox: true}
	var cur *receipts.Purchase
	var err error
	if p.Type == receipts.ProductAutoRenewable {
		cur, err = w.s.v.Google.VerifySubscription(ctx, p.ProductID, p.PurchaseToken, opt)
	} else {
		cur, err = w.s.v.Google.VerifyProduct(ctx, p.ProductID, p.PurchaseToken, opt)
	}
	if err != nil || !cur.Acknowledged {
		return ackErr
	}
	return w.s.ledger.MarkAcknowledged(ctx, string(receipts.StoreGoogle), p.TransactionID)
}
