package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/coinop/coinop/access"
	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
)

const localPlayerID = "coinop.player_id"

func bearer(c *fiber.Ctx) (string, bool) {
	h := c.Get(fiber.HeaderAuthorization)
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

var errUnauthenticated = newProblem(fiber.StatusUnauthorized, codeUnauthenticated,
	"Send a valid token as Authorization: Bearer <token>.")

// requirePlayer accepts an HS256 JWT whose sub is the player id and whose
// exp is set and in the future.
func (s *Server) requirePlayer(c *fiber.Ctx) error {
	token, ok := bearer(c)
	if !ok {
		return errUnauthenticated
	}
	playerID, ok := s.playerFromToken(token)
	if !ok {
		return errUnauthenticated
	}
	c.Locals(localPlayerID, playerID)
	return c.Next()
}

func (s *Server) playerFromToken(token string) (string, bool) {
	if len(s.cfg.JWTSecret) == 0 {
		return "", false
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()}
	if s.cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(s.cfg.JWTIssuer))
	}
	if s.cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(s.cfg.JWTAudience))
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return s.cfg.JWTSecret, nil }, opts...)
	if err != nil || entitlements.ValidatePlayerID(claims.Subject) != nil {
		return "", false
	}
	return claims.Subject, true
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
	token, ok := bearer(c)
	if !ok {
		return errUnauthenticated
	}
	if s.cfg.AdminToken != "" && constantTimeEqual(token, s.cfg.AdminToken) {
		c.Locals(localPrincipal, access.Bootstrap())
		return c.Next()
	}
	if s.keys != nil && access.LooksLikeKey(token) {
		p, err := s.keys.Authenticate(c.UserContext(), token)
		if err != nil {
			return err // ErrUnknownKey is a 401; Postgres trouble a 503
		}
		c.Locals(localPrincipal, p)
		return c.Next()
	}
	if _, isPlayer := s.playerFromToken(token); isPlayer {
		return newProblem(fiber.StatusForbidden, codeForbidden, "Player tokens cannot use the admin API.")
	}
	return errUnauthenticated
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
