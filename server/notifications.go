package server

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/stores"
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

// postAppleNotification receives an App Store Server Notification v2; it
// is in the inbox before Apple hears 200 (stores.Service.ReceiveApple).
func (s *Server) postAppleNotification(c *fiber.Ctx) error {
	r, err := s.stores.ReceiveApple(c.UserContext(), c.Body())
	if errors.Is(err, stores.ErrNotificationBody) {
		return errNotificationBody
	}
	if err != nil {
		return err
	}
	return c.JSON(notificationResponse{NotificationID: r.NotificationID, Duplicate: r.Duplicate})
}

// postGoogleNotification receives a Google Play real-time developer
// notification pushed by Pub/Sub (stores.Service.ReceiveGoogle).
func (s *Server) postGoogleNotification(c *fiber.Ctx) error {
	r, err := s.stores.ReceiveGoogle(c.UserContext(), strings.Clone(c.Get(fiber.HeaderAuthorization)), c.Body())
	if errors.Is(err, stores.ErrNotificationBody) {
		return errNotificationBody
	}
	if err != nil {
		return err
	}
	return c.JSON(notificationResponse{NotificationID: r.NotificationID, Duplicate: r.Duplicate})
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
