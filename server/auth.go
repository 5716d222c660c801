package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/coinop/coinop/access"
	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
)

const localPlayerID = "coinop.player_id"

// bearer returns the request's bearer token, or the 401 that says what is
// wrong with its Authorization header.
func bearer(c *fiber.Ctx) (string, error) {
	h := c.Get(fiber.HeaderAuthorization)
	if strings.TrimSpace(h) == "" {
		return "", errNoCredentials
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", unauthenticated(oauthInvalidRequest, "The Authorization header must use the Bearer scheme: Authorization: Bearer <token>.")
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", unauthenticated(oauthInvalidRequest, "The Authorization header has the Bearer scheme but no token.")
	}
	return string([]byte(token)), nil
}

// OAuth error codes for WWW-Authenticate (RFC 6750 section 3.1).
const (
	oauthInvalidRequest = "invalid_request"
	oauthInvalidToken   = "invalid_token"
)

// errNoCredentials is the 401 for a request without an Authorization
// header. RFC 6750 3.1: with no credentials at all, the challenge carries
// no error code.
var errNoCredentials = unauthenticated("", "Send a token as Authorization: Bearer <token>; the request has no Authorization header.")

// unauthenticated is a 401 whose detail says why; the error handler repeats
// the reason in WWW-Authenticate.
func unauthenticated(oauthError, detail string) problem {
	p := newProblem(fiber.StatusUnauthorized, codeUnauthenticated, detail)
	p.oauthError = oauthError
	return p
}

var (
	errUnknownAPIKey = unauthenticated(oauthInvalidToken, "The API key is unknown or has been revoked.")
	errUnknownToken  = unauthenticated(oauthInvalidToken, "The token is neither a valid admin token nor an API key.")
)

// requirePlayer accepts an HS256 JWT whose sub is the player id and whose
// exp is set and in the future.
func (s *Server) requirePlayer(c *fiber.Ctx) error {
	if err := s.limiter.authGate(c); err != nil {
		return err
	}
	token, err := bearer(c)
	if err != nil {
		return s.refused(c, err)
	}
	playerID, err := s.playerFromToken(token)
	if err != nil {
		return s.refused(c, err)
	}
	c.Locals(localPlayerID, playerID)
	return c.Next()
}

// refused counts a 401 against the client's failure budget (see
// RateLimits.AuthFailures); other errors pass unchanged.
func (s *Server) refused(c *fiber.Ctx, err error) error {
	if problemFor(err).Status != fiber.StatusUnauthorized {
		return err
	}
	return s.limiter.authFailed(c, err)
}

// playerFromToken verifies a player token and returns its player id, or a
// 401 that names what is wrong with it.
func (s *Server) playerFromToken(token string) (string, error) {
	if len(s.cfg.JWTSecret) == 0 {
		return "", unauthenticated(oauthInvalidToken, "This server accepts no player tokens (COINOP_JWT_SECRET is not set).")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt()}
	if s.cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(s.cfg.JWTIssuer))
	}
	if s.cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(s.cfg.JWTAudience))
	}
	var claims jwt.RegisteredClaims
	parsed, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return s.cfg.JWTSecret, nil }, opts...)
	if err != nil {
		return "", tokenRefused(err, &claims, s.cfg)
	}
	if err := strictClaims(parsed, token); err != nil {
		return "", err
	}
	if entitlements.ValidatePlayerID(claims.Subject) != nil {
		return "", unauthenticated(oauthInvalidToken, "The token's sub claim must be a player id: 1 to 128 printable characters without spaces.")
	}
	return claims.Subject, nil
}

// tokenRefused explains why golang-jwt refused a player token. Claims are
// named only once the signature has verified, so a forged token learns
// nothing about what a valid one would need.
func tokenRefused(err error, claims *jwt.RegisteredClaims, cfg Config) problem {
	why := "The token is not valid."
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		why = "The token is not a well-formed JWT (three base64url parts: header.claims.signature)."
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenSignatureInvalid):
		why = "The token's signature does not verify: it must be HS256, signed with this server's secret."
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		why = "The token has no exp claim; player tokens must expire."
	case errors.Is(err, jwt.ErrTokenExpired):
		why = "The token expired"
		if claims.ExpiresAt != nil {
			why += " at " + claims.ExpiresAt.UTC().Format(time.RFC3339)
		}
		why += "; get a new one."
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		why = "The token is not valid yet (nbf or iat is in the future)."
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		why = "The token's iss claim is not " + strconv.Quote(cfg.JWTIssuer) + "."
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		why = "The token's aud claim does not include " + strconv.Quote(cfg.JWTAudience) + "."
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		why = "The token's claims are not valid: " + err.Error() + "."
	}
	return unauthenticated(oauthInvalidToken, why)
}

func playerID(c *fiber.Ctx) string {
	id, _ := c.Locals(localPlayerID).(string)
	return id
}

// requireAdmin authenticates the admin API: COINOP_ADMIN_TOKEN, the
// bootstrap admin with every role, or an admin API key. It only says who the
// caller is; allow, on each route, says whether they may. A valid player
// token is recognised and refused with 403, so a misconfigured client learns
// why.
func (s *Server) requireAdmin(c *fiber.Ctx) error {
	if err := s.limiter.authGate(c); err != nil {
		return err
	}
	p, err := s.adminPrincipal(c)
	if err != nil {
		return s.refused(c, err)
	}
	c.Locals(localPrincipal, p)
	return c.Next()
}

func (s *Server) adminPrincipal(c *fiber.Ctx) (access.Principal, error) {
	token, err := bearer(c)
	if err != nil {
		return access.Principal{}, err
	}
	if s.cfg.AdminToken != "" && constantTimeEqual(token, s.cfg.AdminToken) {
		return access.Bootstrap(), nil
	}
	if s.keys != nil && access.LooksLikeKey(token) {
		// ErrUnknownKey is a 401; Postgres trouble a 503.
		return s.keys.Authenticate(c.UserContext(), token)
	}
	if _, err := s.playerFromToken(token); err == nil {
		return access.Principal{}, newProblem(fiber.StatusForbidden, codeForbidden, "Player tokens cannot use the admin API.")
	}
	return access.Principal{}, errUnknownToken
}

const localPrincipal = "coinop.principal"

// allow lets the request through when the authenticated caller holds role
// (directly or implied, see access.Principal.Can), and answers 403
// forbidden otherwise. Every admin route names its role with it.
func (s *Server) allow(role access.Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !principal(c).Can(role) {
			return newProblem(fiber.StatusForbidden, codeForbidden,
				"This route needs a key with the "+string(role)+" role.").with("required_role", role)
		}
		return c.Next()
	}
}

func principal(c *fiber.Ctx) access.Principal {
	p, _ := c.Locals(localPrincipal).(access.Principal)
	return p
}

// actor is the caller's name in the audit log, like "key:alice" or
// "admin-token".
func actor(c *fiber.Ctx) string { return principal(c).Actor }

// catalogBy and auditBy attribute a change to the caller and the request,
// for the audit log.
func catalogBy(c *fiber.Ctx) catalog.Attribution {
	return catalog.Attribution{Actor: actor(c), RequestID: requestID(c)}
}

func auditBy(c *fiber.Ctx) audit.Attribution {
	return audit.Attribution{Actor: actor(c), RequestID: requestID(c)}
}

// constantTimeEqual compares hashes so neither content nor length leaks
// through timing.
func constantTimeEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// strictClaims refuses what golang-jwt lets through in a token whose
// signature verified: a "crit" header (RFC 7515 4.1.11: a recipient must
// refuse extensions it does not understand, and coinop understands none),
// duplicate claims (encoding/json keeps the last one, so two "sub" could
// make the signer and coinop read different players), and exp, nbf or iat
// written as strings (golang-jwt accepts "exp":"9999999999"; RFC 7519 says
// NumericDate is a JSON number).
func strictClaims(t *jwt.Token, raw string) error {
	if _, ok := t.Header["crit"]; ok {
		return unauthenticated(oauthInvalidToken, `The token's header has a "crit" parameter; coinop understands no JWS extensions.`)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return unauthenticated(oauthInvalidToken, "The token is not a well-formed JWT (three base64url parts: header.claims.signature).")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return unauthenticated(oauthInvalidToken, "The token's claims are not base64url.")
	}
	var claims map[string]jsontext.Value
	if err := jsonv2.Unmarshal(payload, &claims); err != nil {
		return unauthenticated(oauthInvalidToken, "The token's claims are not one JSON object with each claim once.")
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		if v, ok := claims[name]; ok && v.Kind() != '0' {
			return unauthenticated(oauthInvalidToken, "The token's "+name+" claim must be a number of seconds (RFC 7519 NumericDate), not a "+kindName(v.Kind())+".")
		}
	}
	if v, ok := claims["sub"]; ok && v.Kind() != '"' {
		return unauthenticated(oauthInvalidToken, "The token's sub claim must be a string.")
	}
	return nil
}

func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "value"
}
