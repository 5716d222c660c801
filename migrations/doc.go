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
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
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
