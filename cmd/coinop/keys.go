package main

// coinop keys: admin API keys, straight in the database. It needs no key of
// its own, only COINOP_DATABASE_URL, which is how the first keys of an
// installation are made (COINOP_ADMIN_TOKEN can also make them over HTTP).
// Every change is in the audit log, as actor cli:$USER.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/access"
	"github.com/coinop/coinop/audit"
)

const keysUsage = `usage: coinop keys SUBCOMMAND [--database-url URL]

  create --name NAME --role ROLE[,ROLE...] [LIMITS]
                                             make a key; it is printed once, on standard output
  list [--all]                               list active keys (--all: revoked ones too)
  revoke NAME|ID                             revoke a key; other replicas stop accepting it
                                             within COINOP_KEY_CACHE_TTL
  limits NAME|ID [LIMITS | --none]           replace a game-server key's limits (--none: remove them)

LIMITS bound what a server key may move with awards, spends, consumptions and
exchanges (absent: anything):
  --currencies ID[,ID...]   the currencies it may move ("" for none)
  --items ID[,ID...]        the items it may move ("" for none)
  --max-per-posting N       the most of one asset in one posting
  --budget CUR=N[,CUR=N]    the most of a currency it may give per clock hour (UTC)

Roles: viewer (read the catalog), editor (edit the draft), publisher (publish,
schedule, roll back), support (player grants, ledgers, audit log), server
(game-server checks and postings), admin (keys). editor and publisher can also
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
		none  = fs.Bool("none", false, "remove the key's limits (limits)")
		lim   limitFlags
	)
	fs.Var(&roles, "role", "role of the key, repeated or comma-separated (create)")
	lim.register(fs)
	if err := fs.Parse(interspersed(fs, rest)); err != nil {
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
	case "limits":
		if fs.NArg() != 1 || (*none == lim.set(fs)) {
			return usage("limits takes one key NAME or ID, and limits or --none")
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
		limits, err := lim.limits(fs)
		if err != nil {
			return keysError(stderr, err)
		}
		key, secret, err := keys.CreateLimited(ctx, *name, parsed, limits, by)
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
	case "limits":
		limits, err := lim.limits(fs)
		if err != nil {
			return keysError(stderr, err)
		}
		key, err := keys.SetLimits(ctx, fs.Arg(0), limits, by)
		if err != nil {
			return keysError(stderr, err)
		}
		b, _ := json.Marshal(key.Limits)
		fmt.Fprintf(stdout, "key %d %q limits: %s\n", key.ID, key.Name, b)
	}
	return nil
}

// limitFlags are the LIMITS flags of create and limits.
type limitFlags struct {
	currencies, items, budget string
	maxPerPosting             int64
}

func (l *limitFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.currencies, "currencies", "", "currencies a server key may move, comma-separated")
	fs.StringVar(&l.items, "items", "", "items a server key may move, comma-separated")
	fs.Int64Var(&l.maxPerPosting, "max-per-posting", 0, "the most of one asset in one posting")
	fs.StringVar(&l.budget, "budget", "", "hourly budgets, CUR=N comma-separated")
}

// set reports whether any LIMITS flag was given.
func (l *limitFlags) set(fs *flag.FlagSet) bool {
	given := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "currencies", "items", "max-per-posting", "budget":
			given = true
		}
	})
	return given
}

// limits returns the limits the flags describe, nil when none was given.
func (l *limitFlags) limits(fs *flag.FlagSet) (*access.Limits, error) {
	if !l.set(fs) {
		return nil, nil
	}
	out := &access.Limits{MaxPerPosting: l.maxPerPosting}
	list := func(v string) []string {
		ids := []string{}
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
		return ids
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "currencies":
			out.Currencies = list(l.currencies)
		case "items":
			out.Items = list(l.items)
		}
	})
	for _, pair := range list(l.budget) {
		cur, n, ok := strings.Cut(pair, "=")
		amount, err := strconv.ParseInt(n, 10, 64)
		if !ok || err != nil {
			return nil, &access.InvalidError{Field: "budget", Message: fmt.Sprintf("%q is not CURRENCY=AMOUNT", pair)}
		}
		if out.HourlyBudget == nil {
			out.HourlyBudget = map[string]int64{}
		}
		out.HourlyBudget[cur] = amount
	}
	return out, out.Validate()
}

// interspersed moves the positional arguments after the flags, so
// "limits NAME --currencies gold" parses like "limits --currencies gold NAME".
func interspersed(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil && i+1 < len(args) {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue
			}
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(flags, positional...)
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
