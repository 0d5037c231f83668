// Command durable inspects and manages the orchestration instances and
// entities of a Durable Functions for Go task hub, through a running app's
// management API (default http://127.0.0.1:7071) or, with --storage,
// straight through the task hub's Azure Storage account.
//
//	go install github.com/go-durable/durablefunctions/cmd/durable@latest
//	durable list --status Running
//	durable show ID
//	durable start Orchestrator --input '{"n":3}'
//	durable watch ID
//
// Run "durable help" for every command and flag.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], newEnv(os.Stdin, os.Stdout, os.Stderr, os.Getenv))
	stop()
	os.Exit(code)
}
