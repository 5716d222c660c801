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
		return w.revokeGoogle(ctx, n, id, v.PurchaseToken, v.ProductType == playstore.VoidedPurchaseProductTypeSubscription)
	case dn.OneTimeProductNotification != nil:
		o := dn.OneTimeProductNotification
		if o.NotificationType == playstore.OneTimeProductNotificationTypeCanceled {
			return w.revokeGoogle(ctx, n, o.PurchaseToken, o.PurchaseToken, false)
		}
	case dn.SubscriptionNotification != nil:
		sn := dn.SubscriptionNotification
		switch sn.NotificationType {
		case playstore.SubscriptionNotificationTypeRevoked:
			return w.revokeGoogle(ctx, n, sn.PurchaseToken, sn.PurchaseToken, true)
		default:
			rec, found, err := w.owner(ctx, n, receipts.StoreGoogle, sn.PurchaseToken)
			if !found {
				return err
			}
			p, err := w.s.v.Google.VerifySubscription(ctx, sn.SubscriptionID, sn.PurchaseToken,
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
			// On hold, grace period, paused, expired, ...: Play's current
			// state decides whether the subscription grants.
			return w.applySubscription(ctx, n, p, nil)
		}
	}
	return nil
}

// revokeGoogle revokes the recorded purchase id (order id or purchase token)
// when the Play Developer API confirms it no longer stands: a one-time
// product cancelled, a subscription no longer giving access.
func (w *Worker) revokeGoogle(ctx context.Context, n entitlements.StoreNotification, id, token string, subscription bool) error {
	rec, err := w.s.ledger.FindStorePurchase(ctx, string(receipts.StoreGoogle), id)
	if errors.Is(err, entitlements.ErrStorePurchaseNotFound) && id != token && token != "" {
		rec, err = w.s.ledger.FindStorePurchase(ctx, string(receipts.StoreGoogle), token)
	}
	if errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		w.note(ctx, n, "voided or cancelled purchase never redeemed here", slog.String("id", id))
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
	if subscription || rec.ExpiresAt != nil {
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
		_, err := w.s.v.Google.VerifyProduct(ctx, rec.ProductID, rec.PurchaseToken, opt)
		switch {
		case receipts.ReasonOf(err) == receipts.ReasonState:
			gone = true // cancelled (refunded, voided or charged back)
		case storeErr(err):
			return err
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
