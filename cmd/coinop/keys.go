package main

// coinop keys: admin API keys, straight in the database. It needs no key of
// its own, only COINOP_DATABASE_URL, which is how the first keys of an
// installation are made (COINOP_ADMIN_TOKEN can also make them over HTTP).
// Every change is in the audit log, as actor cli:$USER.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/access"
	"github.com/coinop/coinop/audit"
)

const keysUsage = `usage: coinop keys SUBCOMMAND [--database-url URL]

  create --name NAME --role ROLE[,ROLE...]   make a key; it is printed once, on standard output
  list [--all]                               list active keys (--all: revoked ones too)
  revoke NAME|ID                             revoke a key; other replicas stop accepting it
                                             within COINOP_KEY_CACHE_TTL

Roles: viewer (read the catalog), editor (edit the draft), publisher (publish,
schedule, roll back), support (player grants, ledgers, audit log), server
(game-server entitlement checks), admin (keys). editor and publisher can also
read the catalog. --database-url defaults to $COINOP_DATABASE_URL.
`

// rolesFlag collects --role, repeated or comma-separated.
type rolesFlag []string

func (r *rolesFlag) String() string     { return strings.Join(*r, ",") }
func (r *rolesFlag) Set(v string) error { *r = append(*r, v); return nil }

func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, keysUsage)
		return exitError{2}
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keysUsage) }
	dbURL := fs.String("database-url", envOr(getenv, "COINOP_DATABASE_URL", settingDefault("COINOP_DATABASE_URL")), "Postgres URL (env COINOP_DATABASE_URL)")
	var (
		name  = fs.String("name", "", "key name (create)")
		roles rolesFlag
		all   = fs.Bool("all", false, "include revoked keys (list)")
	)
	fs.Var(&roles, "role", "role of the key, repeated or comma-separated (create)")
	if err := fs.Parse(rest); err != nil {
		return exitError{2}
	}
	usage := func(msg string) error {
		fmt.Fprintf(stderr, "coinop keys %s: %s\n\n%s", sub, msg, keysUsage)
		return exitError{2}
	}
	switch sub {
	case "create":
		if fs.NArg() != 0 || *name == "" || len(roles) == 0 {
			return usage("create takes --name and at least one --role")
		}
	case "list":
		if fs.NArg() != 0 {
			return usage("list takes no arguments")
		}
	case "revoke":
		if fs.NArg() != 1 {
			return usage("revoke takes one key NAME or ID")
		}
	default:
		return usage("unknown subcommand")
	}

	db, err := pgxpool.New(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("keys: COINOP_DATABASE_URL: %w", err)
	}
	defer db.Close()
	keys := access.NewKeys(db, access.KeysConfig{})
	by := audit.Attribution{Actor: "cli:" + envOr(getenv, "USER", envOr(getenv, "LOGNAME", "unknown"))}

	switch sub {
	case "create":
		parsed, err := access.ParseRoles(roles...)
		if err != nil {
			return keysError(stderr, err)
		}
		key, secret, err := keys.Create(ctx, *name, parsed, by)
		if err != nil {
			return keysError(stderr, err)
		}
		fmt.Fprintf(stderr, "created key %d %q with roles %s; store it now, it is not shown again:\n", key.ID, key.Name, roleNames(key.Roles))
		fmt.Fprintln(stdout, secret)
	case "list":
		list, err := keys.List(ctx, *all)
		if err != nil {
			return keysError(stderr, err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLES\tPREFIX\tCREATED\tLAST USED\tREVOKED")
		for _, k := range list {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, roleNames(k.Roles), k.Prefix,
				k.CreatedAt.Format(time.RFC3339), timeOrDash(k.LastUsedAt), timeOrDash(k.RevokedAt))
		}
		return tw.Flush()
	case "revoke":
		key, err := keys.Revoke(ctx, fs.Arg(0), by)
		if err != nil {
			return keysError(stderr, err)
		}
		fmt.Fprintf(stdout, "revoked key %d %q at %s\n", key.ID, key.Name, key.RevokedAt.Format(time.RFC3339))
	}
	return nil
}

// keysError prints a refusal (bad input, unknown key, taken name) plainly
// with exit code 1; other errors (Postgres) are returned as they are.
func keysError(stderr io.Writer, err error) error {
	var invalid *access.InvalidError
	if errors.As(err, &invalid) || errors.Is(err, access.ErrKeyNotFound) || errors.Is(err, access.ErrNameTaken) {
		fmt.Fprintf(stderr, "coinop keys: %v\n", err)
		return exitError{1}
	}
	return err
}

func roleNames(roles []access.Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// settingDefault returns the built-in default of a COINOP_* setting.
func settingDefault(env string) string {
	for _, s := range settings {
		if s.env == env {
			return s.def
		}
	}
	return ""
}
