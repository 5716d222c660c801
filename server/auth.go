package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

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

// requireAdmin accepts the configured admin token. A valid player token is
// recognised and refused with 403, so a misconfigured client learns why.
func (s *Server) requireAdmin(c *fiber.Ctx) error {
	token, ok := bearer(c)
	if !ok {
		return errUnauthenticated
	}
	if s.cfg.AdminToken != "" && constantTimeEqual(token, s.cfg.AdminToken) {
		return c.Next()
	}
	if _, isPlayer := s.playerFromToken(token); isPlayer {
		return newProblem(fiber.StatusForbidden, codeForbidden, "Player tokens cannot use the admin API.")
	}
	return errUnauthenticated
}

// constantTimeEqual compares hashes so neither content nor length leaks
// through timing.
func constantTimeEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
