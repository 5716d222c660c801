package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/catalog"
)

// decodeStrict decodes exactly one JSON object into v, refusing unknown
// fields, wrong types and trailing data, so a typo in a client never turns
// into a silently ignored field when money is involved.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("The request body must be a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("Unexpected data after the JSON object.")
	}
	return nil
}

func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("Malformed JSON at byte %d: %s.", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("The body must be a JSON object, not %s.", typ.Value)
		}
		return fmt.Sprintf("Field %q must be %s, not %s.", typ.Field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "Malformed JSON: unexpected end of input."
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "Unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ") + "."
	}
	return "Malformed JSON: " + err.Error() + "."
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int", "int64", "int32":
		return "an integer"
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	}
	return kind
}

func invalid(detail string) problem {
	return newProblem(fiber.StatusBadRequest, codeInvalidRequest, detail)
}

func missing(field string) problem {
	return invalid(fmt.Sprintf("Field %q is required.", field))
}

// requireJSON refuses bodies declared as anything but JSON; an absent
// Content-Type is accepted, as many game engines' HTTP clients omit it.
func requireJSON(c *fiber.Ctx) error {
	ct := c.Get(fiber.HeaderContentType)
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != fiber.MIMEApplicationJSON && !strings.HasSuffix(mt, "+json")) {
		return newProblem(fiber.StatusUnsupportedMediaType, codeUnsupportedMediaType, "Send the body as application/json.")
	}
	return nil
}

type priceBody struct {
	Currency *string `json:"currency"`
	Amount   *int64  `json:"amount"`
}

type purchaseBody struct {
	ItemID   *string    `json:"item_id"`
	Quantity *int64     `json:"quantity"`
	Price    *priceBody `json:"price"`
}

// purchaseInput is a decoded, complete purchase body.
type purchaseInput struct {
	ItemID   string
	Quantity int64
	Price    catalog.Price
}

// parsePurchase decodes a purchase body; every field is required.
func parsePurchase(body []byte) (purchaseInput, error) {
	var b purchaseBody
	if err := decodeStrict(body, &b); err != nil {
		return purchaseInput{}, err
	}
	switch {
	case b.ItemID == nil:
		return purchaseInput{}, missing("item_id")
	case b.Quantity == nil:
		return purchaseInput{}, missing("quantity")
	case b.Price == nil:
		return purchaseInput{}, missing("price")
	case b.Price.Currency == nil:
		return purchaseInput{}, missing("price.currency")
	case b.Price.Amount == nil:
		return purchaseInput{}, missing("price.amount")
	}
	return purchaseInput{
		ItemID:   *b.ItemID,
		Quantity: *b.Quantity,
		Price:    catalog.Price{Currency: *b.Price.Currency, Amount: *b.Price.Amount},
	}, nil
}

type grantBody struct {
	Reason     *string          `json:"reason"`
	Currencies map[string]int64 `json:"currencies"`
	Items      map[string]int64 `json:"items"`
}

func parseGrant(body []byte) (grantBody, error) {
	var b grantBody
	if err := decodeStrict(body, &b); err != nil {
		return b, err
	}
	if b.Reason == nil {
		return b, missing("reason")
	}
	return b, nil
}
