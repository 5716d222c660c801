package stores

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/awa/go-iap/playstore"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/receipts"
)

// Google Play notifications are signals: what a notification means is
// asked of the Play Developer API each time, so a redelivered, repeated or
// out-of-order notification has the effect of the purchase's current
// state, once (grants are unique by order id, revocations happen once).
//
//	SUBSCRIPTION_*           the subscription's state from subscriptionsv2
//	                         (renewals granted; on hold, paused, expired end
//	                         access); a token coinop does not know but whose
//	                         linkedPurchaseToken it does (upgrade, downgrade,
//	                         resubscription) moves the subscription to it
//	SUBSCRIPTION_REVOKED     revoked once Play confirms it no longer grants
//	ONE_TIME_PRODUCT_PURCHASED  a purchase presented while its payment was
//	                         pending is granted to that player now
//	ONE_TIME_PRODUCT_CANCELED   revoked once Play confirms the cancellation
//	VOIDED_PURCHASE          full refund: revoked once Play confirms it;
//	                         quantity-based partial refund: the refunded
//	                         share (refunded / quantity) is taken back
//	PENDING_REFUND_REVIEW    recorded: a chargeback waits for the
//	                         developer's review in Play Console; nothing
//	                         changes until Play voids the purchase
//	TEST, UNKNOWN:<member>   recorded, no effect

// processGoogle acts on a Google Play notification after asking the Play
// Developer API for the purchase's current state.
func (w *Worker) processGoogle(ctx context.Context, n entitlements.StoreNotification) error {
	m, err := w.s.v.Google.DecodePush(n.Body)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	dn := &m.Notification
	switch {
	case dn.VoidedPurchaseNotification != nil:
		v := dn.VoidedPurchaseNotification
		id := v.OrderID
		if id == "" {
			id = v.PurchaseToken
		}
		return w.revokeGoogle(ctx, n, googleRevocation{
			id: id, token: v.PurchaseToken,
			subscription: v.ProductType == playstore.VoidedPurchaseProductTypeSubscription,
			partial:      v.RefundType == playstore.VoidedPurchaseRefundTypePartialRefund,
		})
	case dn.OneTimeProductNotification != nil:
		o := dn.OneTimeProductNotification
		switch o.NotificationType {
		case playstore.OneTimeProductNotificationTypeCanceled:
			// A pending purchase cancelled before it completed is no longer
			// waited for; a completed one is revoked.
			if err := w.s.ledger.ForgetPendingPurchase(ctx, string(receipts.StoreGoogle), o.PurchaseToken); err != nil {
				return err
			}
			return w.revokeGoogle(ctx, n, googleRevocation{id: o.PurchaseToken, token: o.PurchaseToken})
		case playstore.OneTimeProductNotificationTypePurchased:
			return w.completePendingGoogle(ctx, n, o)
		}
	case dn.SubscriptionNotification != nil:
		return w.subscriptionGoogle(ctx, n, dn.SubscriptionNotification)
	case dn.PendingRefundReviewNotification != nil:
		r := dn.PendingRefundReviewNotification
		w.note(ctx, n, "a chargeback awaits review in Play Console; nothing changes until Play voids the purchase",
			slog.String("order_id", r.OrderID), slog.Int("refund_reason", int(r.RefundReason)))
	case dn.TestNotification != nil:
	default:
		w.note(ctx, n, "a kind of notification coinop does not know; recorded, no effect")
	}
	return nil
}

// subscriptionGoogle applies a subscription notification.
func (w *Worker) subscriptionGoogle(ctx context.Context, n entitlements.StoreNotification, sn *playstore.SubscriptionNotification) error {
	if sn.NotificationType == playstore.SubscriptionNotificationTypeRevoked {
		return w.revokeGoogle(ctx, n, googleRevocation{id: sn.PurchaseToken, token: sn.PurchaseToken, subscription: true})
	}
	rec, err := w.s.ledger.FindSubscriptionPurchase(ctx, string(receipts.StoreGoogle), sn.PurchaseToken)
	if errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		return w.linkedGoogle(ctx, n, sn)
	}
	if err != nil {
		return err
	}
	// The product recorded at redemption, not the notification's
	// subscriptionId: Play may leave that out.
	p, err := w.s.v.Google.VerifySubscription(ctx, rec.ProductID, sn.PurchaseToken,
		receipts.VerifyOptions{AllowSandbox: w.s.isTester(rec.PlayerID)})
	if err != nil {
		return retryable(ctx, w, n, err)
	}
	switch sn.NotificationType {
	case playstore.SubscriptionNotificationTypeRenewed, playstore.SubscriptionNotificationTypeRecovered,
		playstore.SubscriptionNotificationTypeRestarted:
		if err := w.grantRenewal(ctx, n, rec.PlayerID, p); err != nil {
			return err
		}
	}
	if err := w.s.endReplacedGoogle(ctx, rec.PlayerID, p); err != nil {
		return err
	}
	// On hold, grace period, paused, expired, ...: Play's current state
	// decides whether the subscription grants.
	return w.applySubscription(ctx, n, p, nil)
}

// linkedGoogle handles a notification about a subscription token never
// redeemed here: when Play says it replaces one that was (an upgrade,
// downgrade or resubscription, through linkedPurchaseToken), the new
// purchase is granted to that purchase's owner, once, and the replaced
// subscription ends.
func (w *Worker) linkedGoogle(ctx context.Context, n entitlements.StoreNotification, sn *playstore.SubscriptionNotification) error {
	p, err := w.s.v.Google.VerifySubscription(ctx, sn.SubscriptionID, sn.PurchaseToken, receipts.VerifyOptions{AllowSandbox: true})
	if err != nil {
		return retryable(ctx, w, n, err)
	}
	if p.LinkedPurchaseToken == "" {
		w.note(ctx, n, "purchase never redeemed here (the game redeems it)")
		return nil
	}
	old, err := w.s.ledger.FindSubscriptionPurchase(ctx, string(receipts.StoreGoogle), p.LinkedPurchaseToken)
	if errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		w.note(ctx, n, "neither the purchase nor the one it replaces was redeemed here")
		return nil
	}
	if err != nil {
		return err
	}
	if !w.s.v.Google.EnvironmentAllowed(p.Environment, w.s.isTester(old.PlayerID)) {
		w.note(ctx, n, "replacement purchase from an environment this player may not use; ignored", slog.String("player_id", old.PlayerID))
		return nil
	}
	if p.SubscriptionState == receipts.SubExpired || p.SubscriptionState == receipts.SubRevoked {
		w.note(ctx, n, "replacement subscription no longer grants; not granted", slog.String("transaction_id", p.TransactionID))
		return nil
	}
	_, err = w.s.redeem(ctx, old.PlayerID, p)
	switch {
	case errors.Is(err, entitlements.ErrReceiptOwnedByAnotherPlayer):
		w.note(ctx, n, "replacement purchase already redeemed by another player", slog.String("transaction_id", p.TransactionID))
		return nil
	case err != nil && receipts.ReasonOf(err) != "":
		w.note(ctx, n, "replacement purchase not granted", slog.Any("error", err))
		return nil
	case err != nil:
		return err
	}
	w.s.log.Info("google subscription moved to its replacement", slog.String("player_id", old.PlayerID),
		slog.String("from", old.TransactionID), slog.String("to", p.TransactionID))
	return w.applySubscription(ctx, n, p, nil)
}

// endReplacedGoogle ends the subscription p replaces (linkedPurchaseToken)
// when the same player owns it, so an upgrade does not keep both granting.
// Repeating it changes nothing.
func (s *Service) endReplacedGoogle(ctx context.Context, player string, p *receipts.Purchase) error {
	if p.LinkedPurchaseToken == "" || p.LinkedPurchaseToken == p.PurchaseToken {
		return nil
	}
	old, err := s.ledger.FindSubscriptionPurchase(ctx, string(receipts.StoreGoogle), p.LinkedPurchaseToken)
	if errors.Is(err, entitlements.ErrStorePurchaseNotFound) || (err == nil && (old.PlayerID != player || old.ExpiresAt == nil)) {
		return nil
	}
	if err != nil {
		return err
	}
	original := old.OriginalTransactionID
	if original == "" {
		original = old.TransactionID
	}
	now := time.Now()
	err = s.ledger.UpdateSubscription(ctx, string(receipts.StoreGoogle), original, &now, receipts.SubExpired)
	if errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		return nil
	}
	return err
}

// completePendingGoogle grants a one-time purchase that was presented
// while its payment was pending, to the player who presented it, when Play
// reports it purchased. Redeem is unique by order id: a repeated
// notification, or the game redeeming it too, grants nothing more.
func (w *Worker) completePendingGoogle(ctx context.Context, n entitlements.StoreNotification, o *playstore.OneTimeProductNotification) error {
	pend, err := w.s.ledger.FindPendingPurchase(ctx, string(receipts.StoreGoogle), o.PurchaseToken)
	if errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		return nil // not presented while pending: the game redeems it
	}
	if err != nil {
		return err
	}
	p, err := w.s.v.Google.VerifyProduct(ctx, pend.ProductID, o.PurchaseToken, receipts.VerifyOptions{AllowSandbox: w.s.isTester(pend.PlayerID)})
	switch {
	case receipts.IsPending(err):
		w.note(ctx, n, "purchase still pending; Play notifies again when it completes")
		return nil
	case storeErr(err):
		return err
	case err != nil:
		w.note(ctx, n, "pending purchase did not complete", slog.String("player_id", pend.PlayerID), slog.Any("error", err))
		return w.s.ledger.ForgetPendingPurchase(ctx, pend.Store, pend.PurchaseToken)
	}
	_, err = w.s.redeem(ctx, pend.PlayerID, p)
	switch {
	case errors.Is(err, entitlements.ErrReceiptOwnedByAnotherPlayer):
		w.note(ctx, n, "completed purchase already redeemed by another player", slog.String("transaction_id", p.TransactionID))
	case err != nil && (receipts.ReasonOf(err) != "" || errors.Is(err, entitlements.ErrStorePurchaseRevoked)):
		w.note(ctx, n, "completed purchase not granted", slog.Any("error", err))
	case err != nil:
		return err
	default:
		w.s.log.Info("pending google purchase completed and granted", slog.String("player_id", pend.PlayerID),
			slog.String("transaction_id", p.TransactionID))
	}
	return w.s.ledger.ForgetPendingPurchase(ctx, pend.Store, pend.PurchaseToken)
}

// googleRevocation is what a notification says was voided or cancelled.
type googleRevocation struct {
	id, token    string // order id (or the token) and purchase token
	subscription bool
	// partial: Play says a quantity-based partial refund.
	partial bool
}

// revokeGoogle revokes the recorded purchase r names (order id or purchase
// token) when the Play Developer API confirms it no longer stands: a
// one-time product cancelled or entirely refunded, a subscription no longer
// giving access. A quantity-based partial refund takes back the refunded
// share (refunded quantity / quantity, from refundableQuantity).
func (w *Worker) revokeGoogle(ctx context.Context, n entitlements.StoreNotification, r googleRevocation) error {
	rec, err := w.s.ledger.FindStorePurchase(ctx, string(receipts.StoreGoogle), r.id)
	if errors.Is(err, entitlements.ErrStorePurchaseNotFound) && r.id != r.token && r.token != "" {
		rec, err = w.s.ledger.FindStorePurchase(ctx, string(receipts.StoreGoogle), r.token)
	}
	if errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		w.note(ctx, n, "voided or cancelled purchase never redeemed here", slog.String("id", r.id))
		return nil
	}
	if err != nil {
		return err
	}
	if rec.RevokedAt != nil {
		return nil
	}
	opt := receipts.VerifyOptions{AllowSandbox: true}
	gone := false
	if r.subscription || rec.ExpiresAt != nil {
		p, err := w.s.v.Google.VerifySubscription(ctx, rec.ProductID, rec.PurchaseToken, opt)
		switch {
		case err == nil:
			gone = p.SubscriptionState == receipts.SubExpired || p.SubscriptionState == receipts.SubRevoked ||
				(p.SubscriptionState == receipts.SubCanceled && p.ExpiresAt != nil && !p.ExpiresAt.After(time.Now()))
		case receipts.ReasonOf(err) == receipts.ReasonState:
			gone = true
		case storeErr(err):
			return err
		}
	} else {
		p, err := w.s.v.Google.VerifyProduct(ctx, rec.ProductID, rec.PurchaseToken, opt)
		switch {
		case receipts.ReasonOf(err) == receipts.ReasonState:
			gone = true // cancelled (refunded, voided or charged back)
		case storeErr(err):
			return err
		case err == nil && p.RevokedShare > 0:
			return w.revokeGooglePartial(ctx, n, rec, p.RefundedQuantity, p.Quantity)
		case err == nil && r.partial:
			// Play leaves refundableQuantity out when it is zero: a
			// quantity-based refund with nothing left refundable is all of
			// the purchase.
			gone = true
		}
	}
	if !gone {
		w.note(ctx, n, "Google Play still reports the purchase as valid; not revoked", slog.String("transaction_id", rec.TransactionID))
		return nil
	}
	rev, err := w.s.ledger.Revoke(ctx, rec.Store, rec.TransactionID, "google "+n.Kind, w.opt.Policy)
	if err != nil {
		return err
	}
	if rev.Reversed {
		w.s.log.Info("store purchase revoked", slog.String("store", rec.Store), slog.String("transaction_id", rec.TransactionID),
			slog.String("player_id", rev.PlayerID), slog.String("reason", n.Kind), slog.Any("shortfall", rev.Shortfall))
	}
	return nil
}

// revokeGooglePartial takes back refunded/quantity of a purchase after a
// quantity-based partial refund, through the ledger's partial revocation.
// Play's refundableQuantity is cumulative, so the share is the purchase's
// whole refunded part, not this refund's: a repeated or late notification
// states the same share and changes nothing (undated statements only
// raise it).
func (w *Worker) revokeGooglePartial(ctx context.Context, n entitlements.StoreNotification, rec entitlements.StorePurchaseRecord, refunded, quantity int64) error {
	rev, err := w.s.ledger.SetRevocation(ctx, entitlements.StoreRevocation{Store: rec.Store, TransactionID: rec.TransactionID,
		Num: refunded, Den: quantity, Reason: "google " + n.Kind + " (partial)", Policy: w.opt.Policy})
	if err != nil {
		return err
	}
	if rev.Reversed {
		w.s.log.Info("store purchase partly revoked", slog.String("store", rec.Store), slog.String("transaction_id", rec.TransactionID),
			slog.String("player_id", rev.PlayerID), slog.Int64("refunded", refunded), slog.Int64("quantity", quantity),
			slog.Any("shortfall", rev.Shortfall))
	}
	return nil
}
