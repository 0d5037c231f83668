// Package enginetest runs a task hub engine for a test: the setup that
// tests of the client, the management API, the built-in HTTP activity and
// the sample's entity share.
package enginetest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
)

// Start registers defs, starts an engine with opts on opts.Backend until
// the test ends (it is stopped in the test's cleanup), and returns it with
// its registry and a client in the engine's process. Unset options get
// test defaults: MaxPollInterval 100 ms, and a logger of warnings and
// errors to stderr.
func Start(t testing.TB, opts engine.Options, defs ...durable.Definition) (*engine.Engine, *durable.Registry, *client.Client) {
	t.Helper()
	reg := durable.NewRegistry()
	if err := reg.Add(defs...); err != nil {
		t.Fatal(err)
	}
	opts.Registry = reg
	if opts.MaxPollInterval == 0 {
		opts.MaxPollInterval = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	eng, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		eng.Stop(ctx)
	})
	return eng, reg, client.New(opts.Backend, reg, eng)
}
