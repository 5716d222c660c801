package stores

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/awa/go-iap/playstore"

	"github.com/coinop/coinop/receipts"
)

// Received says what became of a store notification handed to Receive*.
type Received struct {
	NotificationID string
	// Duplicate is true when the inbox held it already (a redelivery).
	Duplicate bool
}

// ReceiveApple stores an App Store Server Notification v2 (the request body
// as Apple sends it) in the inbox. The signature is the authentication: the
// payload and the signed transaction and renewal info inside it are
// verified before anything is stored. Sandbox notifications are accepted;
// the worker acts on them only for purchases recorded in the same
// environment.
// ErrNotificationBody: a notification body that is not JSON. It is checked
// after the store is known to be enabled and the push authenticated, so an
// unauthenticated caller learns nothing from the body's shape.
var ErrNotificationBody = errors.New("stores: the notification body is not JSON")

func (s *Service) ReceiveApple(ctx context.Context, body []byte) (Received, error) {
	if s.v.Apple == nil {
		return Received{}, disabled("This server does not accept App Store notifications (COINOP_STORES).")
	}
	if !json.Valid(body) {
		return Received{}, ErrNotificationBody
	}
	n, err := s.v.Apple.VerifyNotification(body, receipts.VerifyOptions{AllowSandbox: true})
	if err != nil {
		return Received{}, err
	}
	// Store the signed payload alone, re-encoded: it is all the worker needs
	// and it verifies again there.
	var env struct {
		SignedPayload string `json:"signedPayload"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return Received{}, &receipts.InvalidError{Reason: receipts.ReasonFormat, Detail: "the notification body is not a JSON object"}
	}
	stored, err := json.Marshal(env)
	if err != nil {
		return Received{}, err
	}
	dup, err := s.ledger.ReceiveNotification(ctx, string(receipts.StoreApple), n.NotificationUUID, appleKind(n), stored)
	if err != nil {
		return Received{}, err
	}
	return Received{NotificationID: n.NotificationUUID, Duplicate: dup}, nil
}

func appleKind(n *receipts.Notification) string {
	if n.Subtype != "" {
		return n.Type + "/" + n.Subtype
	}
	return n.Type
}

// ReceiveGoogle stores a Google Play real-time developer notification
// pushed by Pub/Sub: the push's OIDC token (authorization, the request's
// Authorization header) is checked, the envelope decoded, and the message
// stored by Pub/Sub message id. The notification is only a signal: the
// worker asks the Play Developer API what happened.
func (s *Service) ReceiveGoogle(ctx context.Context, authorization string, body []byte) (Received, error) {
	if s.v.Google == nil || s.v.GooglePush == nil {
		return Received{}, disabled("This server does not accept Google Play notifications (COINOP_STORES, COINOP_GOOGLE_PUSH_AUDIENCE, COINOP_GOOGLE_PUSH_SERVICE_ACCOUNT).")
	}
	if err := s.v.GooglePush.Authenticate(ctx, authorization); err != nil {
		return Received{}, err
	}
	if !json.Valid(body) {
		return Received{}, ErrNotificationBody
	}
	m, err := s.v.Google.DecodePush(body)
	if err != nil {
		return Received{}, err
	}
	dup, err := s.ledger.ReceiveNotification(ctx, string(receipts.StoreGoogle), m.MessageID, googleKind(&m.Notification), body)
	if err != nil {
		return Received{}, err
	}
	return Received{NotificationID: m.MessageID, Duplicate: dup}, nil
}

var googleSubscriptionKinds = map[playstore.SubscriptionNotificationType]string{
	playstore.SubscriptionNotificationTypeRecovered:                "SUBSCRIPTION_RECOVERED",
	playstore.SubscriptionNotificationTypeRenewed:                  "SUBSCRIPTION_RENEWED",
	playstore.SubscriptionNotificationTypeCanceled:                 "SUBSCRIPTION_CANCELED",
	playstore.SubscriptionNotificationTypePurchased:                "SUBSCRIPTION_PURCHASED",
	playstore.SubscriptionNotificationTypeAccountHold:              "SUBSCRIPTION_ON_HOLD",
	playstore.SubscriptionNotificationTypeGracePeriod:              "SUBSCRIPTION_IN_GRACE_PERIOD",
	playstore.SubscriptionNotificationTypeRestarted:                "SUBSCRIPTION_RESTARTED",
	playstore.SubscriptionNotificationTypePriceChangeConfirmed:     "SUBSCRIPTION_PRICE_CHANGE_CONFIRMED",
	playstore.SubscriptionNotificationTypeDeferred:                 "SUBSCRIPTION_DEFERRED",
	playstore.SubscriptionNotificationTypePaused:                   "SUBSCRIPTION_PAUSED",
	playstore.SubscriptionNotificationTypePauseScheduleChanged:     "SUBSCRIPTION_PAUSE_SCHEDULE_CHANGED",
	playstore.SubscriptionNotificationTypeRevoked:                  "SUBSCRIPTION_REVOKED",
	playstore.SubscriptionNotificationTypeExpired:                  "SUBSCRIPTION_EXPIRED",
	playstore.SubscriptionNotificationTypePendingPurchaseCancelled: "SUBSCRIPTION_PENDING_PURCHASE_CANCELED",
}

// googleKind names a developer notification as Google's documentation does.
func googleKind(n *receipts.DeveloperNotification) string {
	switch {
	case n.SubscriptionNotification != nil:
		if k, ok := googleSubscriptionKinds[n.SubscriptionNotification.NotificationType]; ok {
			return k
		}
		return "SUBSCRIPTION_" + strconv.Itoa(int(n.SubscriptionNotification.NotificationType))
	case n.OneTimeProductNotification != nil:
		switch n.OneTimeProductNotification.NotificationType {
		case playstore.OneTimeProductNotificationTypePurchased:
			return "ONE_TIME_PRODUCT_PURCHASED"
		case playstore.OneTimeProductNotificationTypeCanceled:
			return "ONE_TIME_PRODUCT_CANCELED"
		}
		return "ONE_TIME_PRODUCT_" + strconv.Itoa(int(n.OneTimeProductNotification.NotificationType))
	case n.VoidedPurchaseNotification != nil:
		return "VOIDED_PURCHASE"
	case n.PendingRefundReviewNotification != nil:
		return "PENDING_REFUND_REVIEW"
	case n.TestNotification != nil:
		return "TEST"
	case len(n.Unknown) > 0:
		// A kind added after this code: recorded under its own name.
		return "UNKNOWN:" + strings.Join(n.Unknown, ",")
	}
	return "UNKNOWN"
}
