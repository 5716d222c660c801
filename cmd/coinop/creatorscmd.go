package main

// coinop creators: creator accounts, codes, earnings, statements and
// payouts, straight in the database through package creators, like coinop
// keys. Changes are in the audit log, as actor cli:$USER.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/creators"
)

const creatorsUsage = `usage: coinop creators SUBCOMMAND [--database-url URL]

  create ID --name NAME [--player PLAYER] [--code CODE[,CODE...]]   add a creator
  list                                     list creators
  show ID                                  one creator and its codes
  suspend ID | activate ID                 stop or resume its earning (what it earned stays)
  add-code ID CODE                         give it one more code
  earnings ID                              pending, available, paid and debt per currency
  statement ID [--from T] [--to T] [--csv] its lines in [from, to) (RFC 3339; default the last 31 days)
  payout ID --key KEY                      record a payout of what is available, once per KEY

--database-url defaults to $COINOP_DATABASE_URL; a payout's minimum is
COINOP_CREATOR_PAYOUT_MIN.
`

func runCreators(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, creatorsUsage)
		return exitError{2}
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("creators "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, creatorsUsage) }
	dbURL := fs.String("database-url", envOr(getenv, "COINOP_DATABASE_URL", settingDefault("COINOP_DATABASE_URL")), "Postgres URL (env COINOP_DATABASE_URL)")
	var (
		name   = fs.String("name", "", "display name (create)")
		player = fs.String("player", "", "the player id the creator plays as (create)")
		codes  = fs.String("code", "", "codes, comma-separated (create)")
		from   = fs.String("from", "", "start, RFC 3339 (statement)")
		to     = fs.String("to", "", "end, RFC 3339 (statement)")
		asCSV  = fs.Bool("csv", false, "CSV for a payment provider (statement)")
		key    = fs.String("key", "", "idempotency key (payout)")
	)
	if err := fs.Parse(interspersed(fs, rest)); err != nil {
		return exitError{2}
	}
	usage := func(msg string) error {
		fmt.Fprintf(stderr, "coinop creators %s: %s\n\n%s", sub, msg, creatorsUsage)
		return exitError{2}
	}
	switch sub {
	case "list":
		if fs.NArg() != 0 {
			return usage("list takes no arguments")
		}
	case "create":
		if fs.NArg() != 1 || *name == "" {
			return usage("create takes one ID and --name")
		}
	case "add-code":
		if fs.NArg() != 2 {
			return usage("add-code takes an ID and a CODE")
		}
	case "payout":
		if fs.NArg() != 1 || *key == "" {
			return usage("payout takes one ID and --key")
		}
	case "show", "suspend", "activate", "earnings", "statement":
		if fs.NArg() != 1 {
			return usage(sub + " takes one creator ID")
		}
	default:
		return usage("unknown subcommand")
	}
	end := time.Now()
	var start time.Time
	if sub == "statement" {
		var err error
		if *to != "" {
			if end, err = time.Parse(time.RFC3339Nano, *to); err != nil {
				return usage("--to is not an RFC 3339 time")
			}
		}
		start = end.AddDate(0, 0, -31)
		if *from != "" {
			if start, err = time.Parse(time.RFC3339Nano, *from); err != nil {
				return usage("--from is not an RFC 3339 time")
			}
		}
	}

	cfg := bindSettings(flag.NewFlagSet("settings", flag.ContinueOnError), getenv)
	program, err := creatorProgram(cfg)
	if err != nil {
		return err
	}
	if program == nil {
		// Managing creators works with the program off; a payout still
		// keeps to the configured minimum.
		p := creators.DefaultProgram()
		if n, err := cfg.integer("COINOP_CREATOR_PAYOUT_MIN"); err == nil && n > 0 {
			p.PayoutMin = int64(n)
		}
		program = &p
	}
	db, err := pgxpool.New(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("creators: COINOP_DATABASE_URL: %w", err)
	}
	defer db.Close()
	svc := creators.New(db, *program)
	by := audit.Attribution{Actor: "cli:" + envOr(getenv, "USER", envOr(getenv, "LOGNAME", "unknown"))}
	id := fs.Arg(0)

	printCreator := func(c creators.Creator) {
		linked := "-"
		if c.PlayerID != nil {
			linked = *c.PlayerID
		}
		fmt.Fprintf(stdout, "creator %s %q %s player %s codes %s\n", c.ID, c.DisplayName, c.Status, linked, strings.Join(c.Codes, ","))
	}
	switch sub {
	case "create":
		req := creators.CreateRequest{ID: id, DisplayName: *name, Codes: splitList(*codes)}
		if *player != "" {
			req.PlayerID = player
		}
		c, err := svc.Create(ctx, req, by)
		if err != nil {
			return creatorsError(stderr, err)
		}
		printCreator(c)
	case "list":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tPLAYER\tCODES\tCREATED")
		after := ""
		for {
			page, err := svc.List(ctx, after, 500)
			if err != nil {
				return creatorsError(stderr, err)
			}
			for _, c := range page {
				linked := "-"
				if c.PlayerID != nil {
					linked = *c.PlayerID
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.DisplayName, c.Status, linked, strings.Join(c.Codes, ","), c.CreatedAt.Format(time.RFC3339))
			}
			if len(page) < 500 {
				break
			}
			after = page[len(page)-1].ID
		}
		return tw.Flush()
	case "show":
		c, err := svc.Get(ctx, id)
		if err != nil {
			return creatorsError(stderr, err)
		}
		printCreator(c)
	case "suspend", "activate":
		status := creators.StatusSuspended
		if sub == "activate" {
			status = creators.StatusActive
		}
		c, err := svc.SetStatus(ctx, id, status, by)
		if err != nil {
			return creatorsError(stderr, err)
		}
		printCreator(c)
	case "add-code":
		c, err := svc.AddCode(ctx, id, fs.Arg(1), by)
		if err != nil {
			return creatorsError(stderr, err)
		}
		printCreator(c)
	case "earnings":
		es, err := svc.Earnings(ctx, id)
		if err != nil {
			return creatorsError(stderr, err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CURRENCY\tPENDING\tAVAILABLE\tCARRIED\tPAID\tDEBT\tEARNED")
		for _, e := range es {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", e.Currency, creators.FormatMicro(e.PendingMicro), e.Available,
				creators.FormatMicro(e.RemainderMicro), e.Paid, creators.FormatMicro(e.DebtMicro), creators.FormatMicro(e.EarnedMicro))
		}
		return tw.Flush()
	case "statement":
		st, err := svc.Statement(ctx, id, start, end)
		if err != nil {
			return creatorsError(stderr, err)
		}
		if *asCSV {
			return st.WriteCSV(stdout)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	case "payout":
		po, err := svc.Payout(ctx, creators.PayoutRequest{CreatorID: id, IdempotencyKey: *key, Actor: by.Actor})
		if err != nil {
			return creatorsError(stderr, err)
		}
		b, _ := json.Marshal(po.Amounts)
		again := ""
		if po.Replayed {
			again = " (already recorded with this key)"
		}
		fmt.Fprintf(stdout, "payout %d to %s: %s%s\n", po.PayoutID, po.CreatorID, b, again)
	}
	return nil
}

// creatorsError prints a refusal the user can act on and exits 1.
func creatorsError(stderr io.Writer, err error) error {
	var bad *creators.InvalidError
	switch {
	case errors.As(err, &bad):
		fmt.Fprintf(stderr, "coinop creators: %s: %s\n", bad.Field, bad.Message)
	case errors.Is(err, creators.ErrNotFound), errors.Is(err, creators.ErrExists), errors.Is(err, creators.ErrCodeTaken),
		errors.Is(err, creators.ErrPlayerLinked), errors.Is(err, creators.ErrBelowMinimum):
		fmt.Fprintf(stderr, "coinop %s\n", err)
	default:
		return err
	}
	return exitError{1}
}
