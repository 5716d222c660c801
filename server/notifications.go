package server

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/awa/go-iap/playstore"
	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/receipts"
)

// notificationBodyLimit bounds a store notification body; Apple's carry two
// signed documents inside a third, a few tens of KB at most.
const notificationBodyLimit = 256 << 10

// errNotificationBody refuses a store notification that is not JSON.
var errNotificationBody = invalid("The notification body must be a JSON object.")

type notificationResponse struct {
	NotificationID string `json:"notification_id"`
	Duplicate      bool   `json:"duplicate"`
}

// postAppleNotification receives an App Store Server Notification v2. The
// signature is the authentication: the payload and the signed transaction
// and renewal info inside it are verified before anything is stored, and the
// notification is in the inbox before Apple hears 200. Sandbox
// notifications are accepted; the worker acts on them only for purchases
// recorded in the same environment.
func (s *Server) postAppleNotification(c *fiber.Ctx) error {
	if s.stores.Apple == nil {
		return storeDisabled("This server does not accept App Store notifications (COINOP_STORES).")
	}
	body := c.Body()
	if !json.Valid(body) {
		return errNotificationBody
	}
	n, err := s.stores.Apple.VerifyNotification(body, receipts.VerifyOptions{AllowSandbox: true})
	if err != nil {
		return err
	}
	// Store the signed payload alone, re-encoded: it is all the worker needs
	// and it verifies again there.
	var env struct {
		SignedPayload string `json:"signedPayload"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return errNotificationBody
	}
	stored, err := json.Marshal(env)
	if err != nil {
		return err
	}
	dup, err := s.ledger.ReceiveNotification(c.UserContext(), string(receipts.StoreApple), n.NotificationUUID, appleKind(n), stored)
	if err != nil {
		return err
	}
	return c.JSON(notificationResponse{NotificationID: n.NotificationUUID, Duplicate: dup})
}

func appleKind(n *receipts.Notification) string {
	if n.Subtype != "" {
		return n.Type + "/" + n.Subtype
	}
	return n.Type
}

// postGoogleNotification receives a Google Play real-time developer
// notification pushed by Pub/Sub: the push's OIDC token is checked, the
// envelope decoded, and the message stored (by Pub/Sub message id) before
// the 200. The notification is only a signal: the worker asks the Play
// Developer API what happened.
func (s *Server) postGoogleNotification(c *fiber.Ctx) error {
	if s.stores.Google == nil || s.stores.GooglePush == nil {
		return storeDisabled("This server does not accept Google Play notifications (COINOP_STORES, COINOP_GOOGLE_PUSH_AUDIENCE, COINOP_GOOGLE_PUSH_SERVICE_ACCOUNT).")
	}
	if err := s.stores.GooglePush.Authenticate(c.UserContext(), strings.Clone(c.Get(fiber.HeaderAuthorization))); err != nil {
		return err
	}
	body := c.Body()
	if !json.Valid(body) {
		return errNotificationBody
	}
	m, err := s.stores.Google.DecodePush(body)
	if err != nil {
		return err
	}
	dup, err := s.ledger.ReceiveNotification(c.UserContext(), string(receipts.StoreGoogle), m.MessageID, googleKind(&m.Notification), body)
	if err != nil {
		return err
	}
	return c.JSON(notificationResponse{NotificationID: m.MessageID, Duplicate: dup})
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
func googleKind(n *playstore.DeveloperNotificationV2) string {
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
	case n.TestNotification != nil:
		return "TEST"
	}
	return ""
}

// Admin views of store purchases, refunds and the notification inbox.

const maxStorePage = 500

func pageLimit(c *fiber.Ctx) (int, error) {
	limit, ok := parseNonNegativeInt(c.Query("limit"), 100)
	if !ok || limit < 1 || limit > maxStorePage {
		return 0, invalid("limit must be an integer from 1 to 500.")
	}
	return int(limit), nil
}

type storePurchasesResponse struct {
	PlayerID       string                             `json:"player_id"`
	StorePurchases []entitlements.StorePurchaseRecord `json:"store_purchases"`
}

func (s *Server) getStorePurchases(c *fiber.Ctx) error {
	player, err := pathPlayer(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	ps, err := s.ledger.StorePurchases(c.UserContext(), player, limit)
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []entitlements.StorePurchaseRecord{}
	}
	return c.JSON(storePurchasesResponse{PlayerID: player, StorePurchases: ps})
}

type refundsResponse struct {
	Refunds []entitlements.StorePurchaseRecord `json:"refunds"`
	Debts   []entitlements.Debt                `json:"debts"`
}

func (s *Server) getRefunds(c *fiber.Ctx) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	refunds, err := s.ledger.Refunds(c.UserContext(), limit)
	if err != nil {
		return err
	}
	debts, err := s.ledger.Debts(c.UserContext(), "", limit)
	if err != nil {
		return err
	}
	resp := refundsResponse{Refunds: refunds, Debts: debts}
	if resp.Refunds == nil {
		resp.Refunds = []entitlements.StorePurchaseRecord{}
	}
	if resp.Debts == nil {
		resp.Debts = []entitlements.Debt{}
	}
	return c.JSON(resp)
}

type notificationsResponse struct {
	Notifications []entitlements.StoreNotification `json:"notifications"`
}

func (s *Server) getStoreNotifications(c *fiber.Ctx) error {
	status := c.Query("status")
	switch status {
	case "", "pending", "processed", "failed":
	default:
		return invalid("status must be pending, processed or failed.")
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	ns, err := s.ledger.Notifications(c.UserContext(), strings.Clone(status), limit)
	if err != nil {
		return err
	}
	if ns == nil {
		ns = []entitlements.StoreNotification{}
	}
	return c.JSON(notificationsResponse{Notifications: ns})
}
