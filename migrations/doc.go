// Package migrations holds coinop's Postgres schema as embedded SQL files and
// applies them with jackc/tern, which takes an advisory lock so that several
// replicas starting with COINOP_AUTO_MIGRATE=true never race each other.
//
// Files are named NNN_description.sql; tern runs them in order and records the
// version in the table public.schema_version.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// FS returns the embedded migration files.
func FS() fs.FS { return files }

// Up applies every migration not yet applied to the database at databaseURL.
// It returns the first error from connecting or from a migration; a failed
// migration is rolled back as a whole.
func Up(ctx context.Context, databaseURL string) (err error) {
	return UpTo(ctx, databaseURL, -1)
}

// UpTo applies the migrations up to and including version (-1: all), so a
// test can set up the schema an earlier release ran on and then upgrade it.
func UpTo(ctx context.Context, databaseURL string, version int32) (err error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("migrations: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m, err := migrate.NewMigrator(ctx, conn, "public.schema_version")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return fmt.Errorf("migrations: load: %w", err)
	}
	if version < 0 {
		err = m.Migrate(ctx)
	} else {
		err = m.MigrateTo(ctx, version)
	}
	if err != nil {
		return fmt.Errorf("migrations: migrate: %w", err)
	}
	return nil
}

// Latest is the schema version this binary's migrations produce: the
// number of the last migration file.
func Latest() int32 {
	entries, _ := fs.Glob(files, "*.sql")
	var latest int32
	for _, name := range entries {
		var n int32
		if _, err := fmt.Sscanf(name, "%03d_", &n); err == nil && n > latest {
			latest = n
		}
	}
	return latest
}

// Querier is what Version needs: a *pgxpool.Pool, *pgx.Conn or pgx.Tx.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Version returns the schema version applied to the database; 0 when it has
// never been migrated.
func Version(ctx context.Context, db Querier) (int32, error) {
	var v int32
	err := db.QueryRow(ctx, `SELECT version FROM public.schema_version`).Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return 0, nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("migrations: read schema version: %w", err)
	}
	return v, nil
}

// BehindError means the database schema is older than this binary needs.
type BehindError struct {
	Have, Want int32
}

func (e *BehindError) Error() string {
	state := fmt.Sprintf("at version %d", e.Have)
	if e.Have == 0 {
		state = "missing (the database was never migrated)"
	}
	return fmt.Sprintf("the database schema is %s and this binary needs version %d: run `coinop migrate` (or start with COINOP_AUTO_MIGRATE=true)", state, e.Want)
}

// Check returns a *BehindError when the database schema is older than
// Latest, or the error that kept it from reading the version. A schema newer
// than the binary passes: migrations only add, so an older replica keeps
// working during a rolling upgrade.
func Check(ctx context.Context, db Querier) error {
	have, err := Version(ctx, db)
	if err != nil {
		return err
	}
	if want := Latest(); have < want {
		return &BehindError{Have: have, Want: want}
	}
	return nil
}
