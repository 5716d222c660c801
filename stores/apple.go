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

// App Store refunds and consumption requests (the rest of processApple is
// in worker.go).

// appleShare turns the share Apple states as refunded (receipts'
// RevokedShare, millionths, from revocationPercentage in milli-percent,
// which Apple rounds to three decimals) into a fraction of a purchase of
// quantity units. Apple applies a multi-unit refund to the whole quantity
// ("1 of 3 items refunded is about 33.333%"), so a share within Apple's
// rounding (half a milli-percent, 5 millionths) of k/quantity is exactly
// k/quantity; any other share is taken as stated.
func appleShare(ppm, quantity int64) (num, den int64) {
	switch {
	case ppm <= 0:
		return 0, 1
	case ppm >= receipts.FullShare:
		return 1, 1
	}
	if quantity > 1 && quantity <= entitlements.MaxQuantity {
		k := (ppm*quantity + receipts.FullShare/2) / receipts.FullShare
		if diff := k*receipts.FullShare - ppm*quantity; k > 0 && k < quantity && diff <= 5*quantity && diff >= -5*quantity {
			return k, quantity
		}
	}
	return ppm, receipts.FullShare
}

// revokeApple applies the refund state of the signed transaction a REFUND,
// REVOKE or REFUND_REVERSED notification carries: the share Apple says is
// refunded (none once a refund is reversed), as of the transaction's
// signedDate. The state, not the notification type, decides, so copies of
// one notification, several notifications for one refund, and a reversal
// arriving before its refund all end in Apple's latest state, applied
// once.
func (w *Worker) revokeApple(ctx context.Context, n entitlements.StoreNotification, an *receipts.Notification, p *receipts.Purchase) error {
	reason := "apple " + appleKind(an)
	num, den := int64(0), int64(1)
	if p.RevokedAt != nil {
		num, den = appleShare(p.RevokedShare, p.Quantity)
	} else if an.Type != "REFUND_REVERSED" {
		w.note(ctx, n, "the transaction carries no revocation; nothing to take back", slog.String("transaction_id", p.TransactionID))
		return nil
	}
	asOf := p.SignedAt
	if asOf.IsZero() {
		asOf = an.SignedAt
	}
	st := entitlements.StoreRevocation{Store: string(p.Store), TransactionID: p.TransactionID, Num: num, Den: den,
		AsOf: asOf, Reason: reason, Policy: w.opt.Policy}
	rec, err := w.s.ledger.FindStorePurchase(ctx, string(p.Store), p.TransactionID)
	if errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		// Remember it anyway: the player may still hold the signed
		// transaction and try to redeem it later.
		if _, err := w.s.ledger.SetRevocation(ctx, st); err != nil && !errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
			return err
		}
		w.note(ctx, n, "refund state of a purchase never redeemed here recorded (redeemable only while nothing is refunded)",
			slog.String("transaction_id", p.TransactionID), slog.Int64("num", num), slog.Int64("den", den))
		return nil
	}
	if err != nil {
		return err
	}
	if rec.Environment != string(p.Environment) {
		w.note(ctx, n, "environment differs from the recorded purchase's; ignored",
			slog.String("transaction_id", p.TransactionID), slog.String("recorded", rec.Environment), slog.String("notified", string(p.Environment)))
		return nil
	}
	rev, err := w.s.ledger.SetRevocation(ctx, st)
	if err != nil {
		return err
	}
	if rev.Reversed {
		w.s.log.Info("store purchase refund state applied", slog.String("store", rec.Store), slog.String("transaction_id", rec.TransactionID),
			slog.String("player_id", rev.PlayerID), slog.String("reason", reason), slog.Int64("num", rev.Num), slog.Int64("den", rev.Den),
			slog.Any("taken", rev.Taken), slog.Any("shortfall", rev.Shortfall), slog.Any("restored", rev.Restored),
			slog.Any("debt_cancelled", rev.DebtCancelled))
	}
	return nil
}

// consumptionWindow is how long after a CONSUMPTION_REQUEST Apple accepts
// the answer.
const consumptionWindow = 12 * time.Hour

// answerConsumption answers a CONSUMPTION_REQUEST with what the ledger knows
// of the purchase, when ConsumptionInfo is on. A failure the store or our
// configuration causes is returned, so the inbox retries it with backoff,
// until Apple's 12-hour window has passed.
func (w *Worker) answerConsumption(ctx context.Context, n entitlements.StoreNotification, an *receipts.Notification) error {
	if !w.opt.ConsumptionInfo {
		w.note(ctx, n, "consumption request recorded; not answered (COINOP_APPLE_CONSUMPTION_INFO is off)")
		return nil
	}
	p := an.Purchase
	if p == nil {
		w.note(ctx, n, "consumption request without a transaction")
		return nil
	}
	if w.s.v.AppleAPI == nil || w.s.v.AppleAPI.Environment() != an.Environment {
		w.note(ctx, n, "no App Store Server API client for this environment; consumption request not answered",
			slog.String("environment", string(an.Environment)))
		return nil
	}
	if requested := an.SignedAt; !requested.IsZero() && time.Since(requested) > consumptionWindow {
		w.note(ctx, n, "consumption request older than Apple's 12-hour window; not answered", slog.Time("requested_at", requested))
		return nil
	}
	c, err := w.s.ledger.ConsumptionOf(ctx, string(p.Store), p.TransactionID)
	if err != nil && !errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		return err
	}
	info := consumptionInfo(c, err == nil, p, time.Now())
	if err := w.s.v.AppleAPI.SendConsumption(ctx, p.TransactionID, info); err != nil {
		if storeErr(err) {
			return fmt.Errorf("send consumption information: %w", err)
		}
		w.note(ctx, n, "the App Store refused the consumption information", slog.Any("error", err))
		return nil
	}
	w.note(ctx, n, "consumption information sent", slog.String("transaction_id", p.TransactionID),
		slog.Int("consumption_status", int(info.ConsumptionStatus)), slog.Int("delivery_status", int(info.DeliveryStatus)))
	return nil
}

// Apple's codes (ConsumptionRequestV1); 0 is "undeclared" everywhere.
const (
	appleNotConsumed       = 1
	applePartiallyConsumed = 2
	appleFullyConsumed     = 3
	appleDelivered         = 0 // delivered and working properly
	appleNotDelivered      = 5 // not delivered, for another reason
	applePlatformApple     = 1
)

// consumptionInfo maps what the ledger knows to Apple's fields. Only what
// the ledger records is declared: consumption (what of the grant the player
// no longer holds), delivery (the grant is in the ledger), the account's
// tenure, the platform, and lifetime dollars purchased and refunded when
// every store purchase of the player has a USD price (Apple's; Google's
// records carry none, and coinop converts no currencies). coinop records no
// play time or refund preference, so playTime, userStatus and
// refundPreference are 0, undeclared. customerConsented is true: the
// setting is only to be turned on with the players' consent.
func consumptionInfo(c entitlements.Consumption, found bool, p *receipts.Purchase, now time.Time) receipts.AppleConsumption {
	info := receipts.AppleConsumption{
		CustomerConsented: true,
		Platform:          applePlatformApple,
		AppAccountToken:   p.AppAccountToken,
		DeliveryStatus:    appleNotDelivered,
	}
	if !found || !c.Delivered {
		return info
	}
	info.DeliveryStatus = appleDelivered
	switch {
	case c.ConsumedPPM <= 0 && !c.Subscription:
		info.ConsumptionStatus = appleNotConsumed
	case c.ConsumedPPM >= receipts.FullShare:
		info.ConsumptionStatus = appleFullyConsumed
	case c.ConsumedPPM > 0:
		info.ConsumptionStatus = applePartiallyConsumed
	}
	info.AccountTenure = accountTenure(now.Sub(c.PlayerSince))
	if c.LifetimeKnown {
		info.LifetimeDollarsPurchased = lifetimeDollars(c.LifetimePurchasedMilli)
		info.LifetimeDollarsRefunded = lifetimeDollars(c.LifetimeRefundedMilli)
	}
	return info
}

// lifetimeDollars is Apple's lifetimeDollarsPurchased/Refunded code for an
// amount in thousandths of a dollar: 1 for $0, then the bands $0.01–49.99,
// $50–99.99, $100–499.99, $500–999.99, $1000–1999.99, and 7 from $2000.
func lifetimeDollars(milli int64) int32 {
	if milli <= 0 {
		return 1
	}
	for i, below := range []int64{50_000, 100_000, 500_000, 1_000_000, 2_000_000} {
		if milli < below {
			return int32(i + 2)
		}
	}
	return 7
}

// accountTenure is Apple's accountTenure code for an account of age d.
func accountTenure(d time.Duration) int32 {
	const day = 24 * time.Hour
	for i, limit := range []time.Duration{3 * day, 10 * day, 30 * day, 90 * day, 180 * day, 365 * day} {
		if d < limit {
			return int32(i + 1)
		}
	}
	return 7
}
