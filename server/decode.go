package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/catalog"
)

// decodeStrict decodes exactly one JSON object into v, refusing unknown
// fields, field names in another case, duplicate fields, wrong types and
// trailing data, so a typo in a client never turns into a silently ignored
// or silently overridden field when money is involved. encoding/json
// matches names case-insensitively and keeps the last duplicate, so this
// uses the JSON v2 prototype (go-json-experiment/json), which refuses both.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("The request body must be a JSON object.")
	}
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	value, err := dec.ReadValue()
	if err != nil {
		return invalid(describeJSONError(err))
	}
	value = bytes.Clone(value) // the decoder reuses its buffer on the next read
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return invalid("Unexpected data after the JSON object.")
	}
	if err := jsonv2.Unmarshal(value, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return invalid(describeJSONError(err))
	}
	return nil
}

// jsonField names the member a JSON pointer ends at, and where it is.
func jsonField(p jsontext.Pointer) (name, path string) {
	path = strings.TrimPrefix(strings.ReplaceAll(string(p), "/", "."), ".")
	return p.LastToken(), path
}

func describeJSONError(err error) string {
	var semantic *jsonv2.SemanticError
	var syntax *jsontext.SyntacticError
	switch {
	case errors.As(err, &semantic):
		name, field := jsonField(semantic.JSONPointer)
		switch {
		case errors.Is(semantic.Err, jsonv2.ErrUnknownName):
			if name != field {
				return fmt.Sprintf("Unknown field %q in %q.", name, strings.TrimSuffix(field, "."+name))
			}
			return fmt.Sprintf("Unknown field %q.", name)
		case field == "" && semantic.GoType != nil:
			return "The body must be a JSON object."
		case semantic.GoType != nil:
			return fmt.Sprintf("Field %q must be %s.", field, jsonTypeName(semantic.GoType.Kind().String()))
		}
		return fmt.Sprintf("Field %q is malformed.", field)
	case errors.As(err, &syntax):
		if errors.Is(err, jsontext.ErrDuplicateName) {
			_, field := jsonField(syntax.JSONPointer)
			return fmt.Sprintf("Field %q appears more than once.", field)
		}
		return fmt.Sprintf("Malformed JSON at byte %d.", syntax.ByteOffset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "Malformed JSON: unexpected end of input."
	}
	return "Malformed JSON."
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
	// Refused before the purchase, not stored with the idempotency key as an
	// item_not_found: a malformed id can name nothing, and an unbounded one
	// would be kept for a day with every retry.
	if !catalog.ValidID(*b.ItemID) {
		return purchaseInput{}, invalid(fmt.Sprintf("item_id must be a catalog id: 1 to %d characters from a-z, 0-9, '_', '.' and '-', starting with a letter or digit.", catalog.MaxIDLength))
	}
	if !catalog.ValidID(*b.Price.Currency) {
		return purchaseInput{}, invalid(fmt.Sprintf("price.currency must be a catalog currency id: 1 to %d characters from a-z, 0-9, '_', '.' and '-', starting with a letter or digit.", catalog.MaxIDLength))
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
