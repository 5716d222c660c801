package main

import (
	"context"
	"io"
)

func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_ = ctx
	_ = args
	_ = stdout
	io.WriteString(stderr, "coinop loadtest: not wired yet\n")
	return exitError{2}
}
