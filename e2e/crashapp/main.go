// Command crashapp is a function app for the crash-recovery test: its
// orchestrator calls Step for "one", "two", "three", and Step("two") blocks
// until the test creates a "release" file, so the test can SIGKILL the
// process at a known point in the middle of an orchestration.
package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	httpstart "github.com/go-durable/durablefunctions/HttpStart"
	"github.com/go-durable/durablefunctions/handler/funcapp"
	"github.com/go-durable/durablefunctions/taskhub/durable"
)

var step = durable.NewActivity("Step", func(ctx context.Context, name string) (string, error) {
	dir := os.Getenv("CRASHTEST_DIR")
	if dir == "" {
		return "", errors.New("CRASHTEST_DIR is not set")
	}
	f, err := os.OpenFile(filepath.Join(dir, "runs.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(name + "\n")
	f.Close()
	if err != nil {
		return "", err
	}
	if name == "two" {
		if err := os.WriteFile(filepath.Join(dir, "blocked"), nil, 0o644); err != nil {
			return "", err
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "release")); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return "done " + name, nil
})

var crashTest = durable.NewOrchestrator("CrashTest", func(ctx *durable.Context, _ any) ([]string, error) {
	var out []string
	for _, name := range []string{"one", "two", "three"} {
		s, err := step.Call(ctx, name).Await()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
})

func main() {
	funcapp.Main(func(app *funcapp.App) error {
		return app.Handler.HandleHTTP("HttpStart", httpstart.New(app.Client, app.API))
	}, crashTest, step)
}
