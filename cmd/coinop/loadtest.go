package main

import (
	"context"
	"io"

	"github.com/coinop/coinop/loadtest"
)

func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if code := loadtest.Command(ctx, args, stdout, stderr); code != 0 {
		return exitError{code}
	}
	return nil
}
