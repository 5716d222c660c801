package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	player := fs.String("player", "", "player id (the token's sub)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	// Secrets default to the environment after parsing, so -h never prints them.
	secret := fs.String("secret", "", "HS256 secret (default: env COINOP_JWT_SECRET)")
	issuer := fs.String("issuer", getenv("COINOP_JWT_ISSUER"), "iss claim (env COINOP_JWT_ISSUER)")
	audience := fs.String("audience", getenv("COINOP_JWT_AUDIENCE"), "aud claim (env COINOP_JWT_AUDIENCE)")
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	if *secret == "" {
		*secret = getenv("COINOP_JWT_SECRET")
	}
	if *player == "" {
		return errors.New("token: --player is required")
	}
	tok, err := playerToken(*secret, *player, *issuer, *audience, *ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func playerToken(secret, player, issuer, audience string, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) < 32 {
		return "", errors.New("token: the JWT secret must be at least 32 bytes (set COINOP_JWT_SECRET)")
	}
	if ttl <= 0 {
		return "", errors.New("token: --ttl must be positive")
	}
	claims := jwt.RegisteredClaims{
		Subject:   player,
		Issuer:    issuer,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	if audience != "" {
		claims.Audience = jwt.ClaimStrings{audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
}
