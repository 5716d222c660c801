package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// Every way pgx reports that Postgres is out of reach is a 503 the client
// retries, never a 500: a dropped connection mid-grant included.
func TestDatabaseUnavailableErrorsAre503(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("entitlements: grant: %w", err) }
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"a connection closed under a statement", wrap(fmt.Errorf("conn closed: %w", pgconn.ErrConnClosed))},
		{"EOF from a socket the server closed", wrap(fmt.Errorf("failed to receive message: %w", io.EOF))},
		{"an unexpected EOF mid-message", wrap(fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF))},
		{"connection reset", wrap(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET})},
		{"refused while restarting", wrap(&pgconn.ConnectError{})},
		{"admin shutdown (57P01)", wrap(&pgconn.PgError{Code: "57P01"})},
		{"too many connections (53300)", wrap(&pgconn.PgError{Code: "53300"})},
		{"connection failure (08006)", wrap(&pgconn.PgError{Code: "08006"})},
		{"the request deadline", wrap(context.DeadlineExceeded)},
		{"a pool closed at shutdown", wrap(puddle.ErrClosedPool)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p := problemFor(tc.err); p.Status != 503 || p.Code != codeUnavailable {
				t.Errorf("%v = %d %s, want 503 unavailable", tc.err, p.Status, p.Code)
			}
		})
	}
	if p := problemFor(errors.New("a bug")); p.Status != 500 {
		t.Errorf("an unknown error = %d, want 500", p.Status)
	}
	if p := problemFor(&pgconn.PgError{Code: "23505"}); p.Status != 500 {
		t.Errorf("a unique violation = %d, want 500: it is a bug, not an outage", p.Status)
	}
}
