package server

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/access"
	"github.com/coinop/coinop/entitlements"
)

// MaxChecks is the most (player, item) pairs in one batch check.
const MaxChecks = 1000

var errServerOnly = newProblem(fiber.StatusForbidden, codeForbidden, "This route takes a game-server key.")

// requireServer accepts the game-server key (COINOP_SERVER_TOKEN) or an
// admin API key with the server role. Player tokens, the admin token and
// keys without the role are refused: game servers check and post for every
// player, and nothing else may. A key's principal is kept in the request's
// locals, so postings can name it in the ledger.
func (s *Server) requireServer(c *fiber.Ctx) error {
	if err := s.limiter.authGate(c); err != nil {
		return err
	}
	if err := s.serverCredential(c); err != nil {
		return s.refused(c, err)
	}
	return c.Next()
}

func (s *Server) serverCredential(c *fiber.Ctx) error {
	token, err := bearer(c)
	if err != nil {
		return err
	}
	if s.cfg.ServerToken != "" && constantTimeEqual(token, s.cfg.ServerToken) {
		return nil
	}
	if s.keys != nil && access.LooksLikeKey(token) {
		p, err := s.keys.Authenticate(c.UserContext(), token)
		if err != nil {
			return err // ErrUnknownKey is a 401; Postgres trouble a 503
		}
		if !p.Can(access.RoleServer) {
			return errServerOnly.with("required_role", access.RoleServer)
		}
		c.Locals(localPrincipal, p)
		return nil
	}
	_, notPlayer := s.playerFromToken(token)
	if notPlayer == nil || (s.cfg.AdminToken != "" && constantTimeEqual(token, s.cfg.AdminToken)) {
		return errServerOnly
	}
	return unauthenticated(oauthInvalidToken, "The token is neither the game-server token nor an API key.")
}

type checkResult struct {
	PlayerID  string        `json:"player_id"`
	ItemID    string        `json:"item_id"`
	Owned     *bool         `json:"owned,omitempty"`
	Quantity  *int64        `json:"quantity,omitempty"`
	ExpiresAt *time.Time    `json:"expires_at,omitempty"`
	Error     *checkFailure `json:"error,omitempty"`
}

// checkFailure is one failed entry of a batch check: the batch still
// answers 200 and every other entry stands.
type checkFailure struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

var errCheckUnknownItem = newProblem(fiber.StatusNotFound, string(entitlements.CodeItemNotFound),
	"The live catalog has no item with this id and the player holds none: check the id (currencies are read from the wallet, not checked).")

func checkBodyOf(r entitlements.CheckResult) checkResult {
	out := checkResult{PlayerID: r.PlayerID, ItemID: r.ItemID}
	if r.Err != nil {
		p := problemFor(r.Err)
		out.Error = &checkFailure{Code: p.Code, Detail: p.Detail}
		return out
	}
	out.Owned, out.Quantity, out.ExpiresAt = &r.Owned, &r.Quantity, r.ExpiresAt
	return out
}

func (s *Server) getEntitlementCheck(c *fiber.Ctx) error {
	player, err := pathPlayer(c)
	if err != nil {
		return err
	}
	item, err := pathParam(c, "item_id")
	if err != nil {
		return err
	}
	if item == "" || len(item) > 128 || !utf8.ValidString(item) || strings.ContainsRune(item, 0) {
		return invalid("item_id must be 1 to 128 characters of valid UTF-8.")
	}
	r, err := s.ledger.Check(c.UserContext(), player, item)
	if err != nil {
		return err
	}
	if body, ok := appendCheckBody(make([]byte, 0, 64+len(player)+len(item)), r); ok {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(body)
	}
	return c.JSON(checkBodyOf(r))
}

// appendCheckBody appends the JSON of the common answer (owned or not, no
// expiry, ids that need no escaping) byte for byte as encodeJSON would
// write checkBodyOf(r), without reflection: this is the game server's hot
// path. ok is false for any other answer, which goes through encodeJSON.
func appendCheckBody(b []byte, r entitlements.CheckResult) ([]byte, bool) {
	if r.Err != nil || r.ExpiresAt != nil || !plainJSONString(r.PlayerID) || !plainJSONString(r.ItemID) {
		return nil, false
	}
	b = append(b, `{"player_id":"`...)
	b = append(b, r.PlayerID...)
	b = append(b, `","item_id":"`...)
	b = append(b, r.ItemID...)
	b = append(b, `","owned":`...)
	b = strconv.AppendBool(b, r.Owned)
	b = append(b, `,"quantity":`...)
	b = strconv.AppendInt(b, r.Quantity, 10)
	return append(b, '}'), true
}

// plainJSONString reports whether encoding/json writes s as itself between
// quotes: printable ASCII other than the quote, the backslash and the
// HTML-escaped <, > and &.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

type checkBody struct {
	Checks []struct {
		PlayerID *string `json:"player_id"`
		ItemID   *string `json:"item_id"`
	} `json:"checks"`
}

func (s *Server) postEntitlementChecks(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	var b checkBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return err
	}
	if b.Checks == nil {
		return missing("checks")
	}
	if len(b.Checks) > MaxChecks {
		return invalid("At most 1000 checks per request.")
	}
	queries := make([]entitlements.CheckQuery, len(b.Checks))
	for i, ch := range b.Checks {
		if ch.PlayerID == nil || ch.ItemID == nil {
			return invalid("checks[" + itoa(i) + "] needs player_id and item_id.")
		}
		if *ch.ItemID == "" || len(*ch.ItemID) > 128 {
			return invalid("checks[" + itoa(i) + "].item_id must be 1 to 128 characters.")
		}
		if err := entitlements.ValidatePlayerID(*ch.PlayerID); err != nil {
			return invalid("checks[" + itoa(i) + "].player_id must be 1 to 128 printable characters without spaces.")
		}
		queries[i] = entitlements.CheckQuery{PlayerID: *ch.PlayerID, ItemID: *ch.ItemID}
	}
	results, err := s.ledger.CheckMany(c.UserContext(), queries)
	if err != nil {
		return err
	}
	out := make([]checkResult, len(results))
	for i, r := range results {
		out[i] = checkBodyOf(r)
	}
	return c.JSON(fiber.Map{"results": out})
}

func itoa(i int) string { return strconv.Itoa(i) }
