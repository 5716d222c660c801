package server

// Webhook endpoints over HTTP, for the admin role: the same operations as
// `coinop webhooks`, each recorded in the audit log by the webhooks package.
// Secrets are answered once (on create and rotation) with no-store, never
// listed.

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/webhooks"
)

// webhookID reads the endpoint id in the URL; anything but a positive
// integer names no endpoint.
func webhookID(c *fiber.Ctx) (int64, error) {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, webhooks.ErrNotFound
	}
	return id, nil
}

func (s *Server) getWebhooks(c *fiber.Ctx) error {
	list, err := s.webhooks.List(c.UserContext())
	if err != nil {
		return err
	}
	if list == nil {
		list = []webhooks.Endpoint{}
	}
	return c.JSON(fiber.Map{"webhooks": list})
}

// webhookBody is a create or update body. EventTypes stays raw so that an
// update can tell null (every event) from absent (unchanged).
type webhookBody struct {
	URL         *string         `json:"url"`
	Description *string         `json:"description"`
	EventTypes  json.RawMessage `json:"event_types"`
	Enabled     *bool           `json:"enabled"`
}

func (b webhookBody) settings() (webhooks.Settings, error) {
	set := webhooks.Settings{URL: b.URL, Description: b.Description, Enabled: b.Enabled}
	if b.EventTypes != nil {
		var types []string
		if !bytes.Equal(bytes.TrimSpace(b.EventTypes), []byte("null")) {
			if err := decodeStrict(b.EventTypes, &types); err != nil {
				return set, invalid("event_types must be an array of event types, or null for every event.")
			}
			if types == nil {
				types = []string{} // [] is refused by the domain, not taken as null
			}
		}
		set.EventTypes = &types
	}
	return set, nil
}

func (s *Server) decodeWebhookBody(c *fiber.Ctx) (webhooks.Settings, error) {
	if err := requireJSON(c); err != nil {
		return webhooks.Settings{}, err
	}
	var b webhookBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return webhooks.Settings{}, err
	}
	return b.settings()
}

// postWebhook registers an endpoint and answers with its signing secret,
// the only time it is shown.
func (s *Server) postWebhook(c *fiber.Ctx) error {
	set, err := s.decodeWebhookBody(c)
	if err != nil {
		return err
	}
	if set.URL == nil {
		return missing("url")
	}
	e, secret, err := s.webhooks.Create(c.UserContext(), set, auditBy(c))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Location("/admin/v1/webhooks/" + strconv.FormatInt(e.ID, 10))
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"webhook": e, "secret": secret})
}

func (s *Server) getWebhook(c *fiber.Ctx) error {
	id, err := webhookID(c)
	if err != nil {
		return err
	}
	e, err := s.webhooks.Get(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"webhook": e})
}

// patchWebhook changes the fields the body has; enabling an endpoint clears
// its failure record.
func (s *Server) patchWebhook(c *fiber.Ctx) error {
	id, err := webhookID(c)
	if err != nil {
		return err
	}
	set, err := s.decodeWebhookBody(c)
	if err != nil {
		return err
	}
	e, err := s.webhooks.Update(c.UserContext(), id, set, auditBy(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"webhook": e})
}

func (s *Server) deleteWebhook(c *fiber.Ctx) error {
	id, err := webhookID(c)
	if err != nil {
		return err
	}
	e, err := s.webhooks.Delete(c.UserContext(), id, auditBy(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"webhook": e})
}

// postWebhookRotateSecret replaces the signing secret; the previous one
// keeps signing alongside for webhooks.RotationOverlap.
func (s *Server) postWebhookRotateSecret(c *fiber.Ctx) error {
	id, err := webhookID(c)
	if err != nil {
		return err
	}
	e, secret, err := s.webhooks.RotateSecret(c.UserContext(), id, auditBy(c))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"webhook": e, "secret": secret})
}

type redeliveryBody struct {
	EventID *int64     `json:"event_id"`
	Since   *time.Time `json:"since"`
	Until   *time.Time `json:"until"`
}

// postWebhookRedeliveries queues one event, or a time range of events, for
// another round of attempts; 202 with how many were queued.
func (s *Server) postWebhookRedeliveries(c *fiber.Ctx) error {
	id, err := webhookID(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c); err != nil {
		return err
	}
	var b redeliveryBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return err
	}
	var r webhooks.Redelivery
	if b.EventID != nil {
		if *b.EventID <= 0 {
			return &webhooks.InvalidError{Field: "event_id", Reason: "must be a positive event id"}
		}
		r.EventID = *b.EventID
	}
	if b.Since != nil {
		r.Since = *b.Since
	}
	if b.Until != nil {
		r.Until = *b.Until
	}
	n, err := s.webhooks.Redeliver(c.UserContext(), id, r, auditBy(c))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"queued": n})
}
