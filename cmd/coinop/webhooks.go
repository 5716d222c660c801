package main

// coinop webhooks: webhook endpoints, straight in the database, like
// coinop keys. Every change is in the audit log, as actor cli:$USER.

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

	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/webhooks"
)

const webhooksUsage = `usage: coinop webhooks SUBCOMMAND [--database-url URL]

  create --url URL [--types T[,T...]] [--description TEXT]
                                  register an endpoint; its secret is printed once, on standard output
  list                            list endpoints
  disable ID | enable ID          stop or resume deliveries to an endpoint
  delete ID                       remove an endpoint and its deliveries
  rotate ID                       give an endpoint a new secret (printed once; the old one signs for 24h more)
  redeliver ID (--event N | --since TIME --until TIME)
                                  send one event, or those created in [since, until) (RFC 3339), again

--types filters event types: exact (ledger.purchase) or prefixes (ledger.*);
absent means every event. http:// URLs need --allow-insecure
(COINOP_WEBHOOK_ALLOW_INSECURE). --database-url defaults to $COINOP_DATABASE_URL.
`

func runWebhooks(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, webhooksUsage)
		return exitError{2}
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("webhooks "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, webhooksUsage) }
	dbURL := fs.String("database-url", envOr(getenv, "COINOP_DATABASE_URL", settingDefault("COINOP_DATABASE_URL")), "Postgres URL (env COINOP_DATABASE_URL)")
	insecureDefault, _ := strconv.ParseBool(getenv("COINOP_WEBHOOK_ALLOW_INSECURE"))
	var (
		u        = fs.String("url", "", "endpoint URL (create)")
		types    = fs.String("types", "", "comma-separated event types or prefixes (create)")
		desc     = fs.String("description", "", "description (create)")
		insecure = fs.Bool("allow-insecure", insecureDefault, "accept an http:// URL (env COINOP_WEBHOOK_ALLOW_INSECURE)")
		event    = fs.Int64("event", 0, "event id (redeliver)")
		since    = fs.String("since", "", "start of the range, RFC 3339 (redeliver)")
		until    = fs.String("until", "", "end of the range, RFC 3339 (redeliver)")
	)
	if err := fs.Parse(interspersed(fs, rest)); err != nil {
		return exitError{2}
	}
	usage := func(msg string) error {
		fmt.Fprintf(stderr, "coinop webhooks %s: %s\n\n%s", sub, msg, webhooksUsage)
		return exitError{2}
	}
	var id int64
	switch sub {
	case "create":
		if fs.NArg() != 0 || *u == "" {
			return usage("create takes --url")
		}
	case "list":
		if fs.NArg() != 0 {
			return usage("list takes no arguments")
		}
	case "disable", "enable", "delete", "rotate", "redeliver":
		var err error
		if fs.NArg() != 1 {
			return usage(sub + " takes one endpoint ID")
		}
		if id, err = strconv.ParseInt(fs.Arg(0), 10, 64); err != nil || id <= 0 {
			return usage("the endpoint ID must be a positive number")
		}
	default:
		return usage("unknown subcommand")
	}

	db, err := pgxpool.New(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("webhooks: COINOP_DATABASE_URL: %w", err)
	}
	defer db.Close()
	eps := webhooks.NewEndpoints(db, *insecure)
	by := audit.Attribution{Actor: "cli:" + envOr(getenv, "USER", envOr(getenv, "LOGNAME", "unknown"))}
	fail := func(err error) error {
		var inv *webhooks.InvalidError
		if errors.As(err, &inv) || errors.Is(err, webhooks.ErrNotFound) || errors.Is(err, webhooks.ErrEventNotFound) {
			fmt.Fprintf(stderr, "coinop webhooks %s: %v\n", sub, err)
			return exitError{1}
		}
		return err
	}
	show := func(e webhooks.Endpoint) error {
		return json.NewEncoder(stdout).Encode(map[string]any{"endpoint": e})
	}
	switch sub {
	case "create":
		set := webhooks.Settings{URL: u, Description: desc}
		if *types != "" {
			list := splitList(*types)
			set.EventTypes = &list
		}
		e, secret, err := eps.Create(ctx, set, by)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stderr, "created webhook endpoint %d for %s; store its secret now, it is not shown again:\n", e.ID, e.URL)
		fmt.Fprintln(stdout, secret)
	case "list":
		list, err := eps.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tURL\tTYPES\tENABLED\tCREATED")
		for _, e := range list {
			t := "*"
			if e.EventTypes != nil {
				t = strings.Join(e.EventTypes, ",")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%s\n", e.ID, e.URL, t, e.Enabled, e.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "disable", "enable":
		on := sub == "enable"
		e, err := eps.Update(ctx, id, webhooks.Settings{Enabled: &on}, by)
		if err != nil {
			return fail(err)
		}
		return show(e)
	case "delete":
		e, err := eps.Delete(ctx, id, by)
		if err != nil {
			return fail(err)
		}
		return show(e)
	case "rotate":
		e, secret, err := eps.RotateSecret(ctx, id, by)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stderr, "new secret of webhook endpoint %d; store it now, it is not shown again:\n", e.ID)
		fmt.Fprintln(stdout, secret)
	case "redeliver":
		r := webhooks.Redelivery{EventID: *event}
		for _, p := range []struct {
			s   string
			dst *time.Time
		}{{*since, &r.Since}, {*until, &r.Until}} {
			if p.s == "" {
				continue
			}
			if *p.dst, err = time.Parse(time.RFC3339, p.s); err != nil {
				return usage("--since and --until are RFC 3339 times like 2026-12-02T18:00:00Z")
			}
		}
		n, err := eps.Redeliver(ctx, id, r, by)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "queued %d deliveries\n", n)
	}
	return nil
}
