// Command coinop is the one binary of coinop: the HTTP API server and the
// tools around it (migrations, local development, tokens, catalog files, load
// tests). It wires packages together and holds no business logic.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exitError carries a process exit code other than 1.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "coinop:", err)
		os.Exit(1)
	}
}

const usage = `coinop: in-game economy backend

Usage:
  coinop serve      [flags]   run the HTTP API
  coinop migrate    [flags]   apply database migrations
  coinop dev        [flags]   local development: Postgres, Redis, demo catalog and player, then serve
  coinop token      --player ID [--ttl 1h]   print a player token (HS256, COINOP_JWT_SECRET)
  coinop catalog    pull | push | diff | validate | publish | versions | rollback   the catalog workflow (see coinop catalog -h)
  coinop keys       create --name NAME --role ROLE | list | revoke NAME|ID   admin API keys (acts on the database)
  coinop webhooks  create --url URL | list | disable|enable|delete|rotate ID | redeliver ID   webhook endpoints (acts on the database)
  coinop creators   create | list | show | suspend | activate | add-code | earnings | statement | payout   creators (acts on the database)
  coinop receipts   mint | notification   fake-store purchases and notifications for local tests
  coinop loadtest   [flags]   load test a coinop server (see coinop loadtest -h)

Every setting is an environment variable (COINOP_*) and a flag; run
"coinop serve -h" for the list.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError{2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stderr)
	case "dev":
		return runDev(ctx, rest, getenv, stdout, stderr)
	case "token":
		return runToken(rest, getenv, stdout, stderr)
	case "catalog":
		return runCatalog(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return runKeys(ctx, rest, getenv, stdout, stderr)
	case "webhooks":
		return runWebhooks(ctx, rest, getenv, stdout, stderr)
	case "creators":
		return runCreators(ctx, rest, getenv, stdout, stderr)
	case "receipts":
		return runReceipts(rest, getenv, stdout, stderr)
	case "loadtest":
		return runLoadtest(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "coinop: unknown command %q\n\n%s", cmd, usage)
	return exitError{2}
}
