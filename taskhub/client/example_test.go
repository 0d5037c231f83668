package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
)

// shout is the example's orchestrator: it upper-cases words in parallel.
var shout = durable.NewOrchestrator("Shout", func(ctx *durable.Context, words []string) ([]string, error) {
	if err := ctx.SetCustomStatus(map[string]int{"words": len(words)}); err != nil {
		return nil, err
	}
	tasks := make([]*durable.Task[string], len(words))
	for i, w := range words {
		tasks[i] = upper.Call(ctx, w)
	}
	return durable.All(ctx, tasks...)
})

var upper = durable.NewActivity("Upper", func(_ context.Context, w string) (string, error) {
	if w == "" {
		return "", errors.New("empty word")
	}
	return strings.ToUpper(w), nil
})

// The typed client starts an orchestrator definition with its input type
// and reads its output type back.
func ExampleStart() {
	ctx := context.Background()
	be, _ := memory.New(memory.Options{HubName: "Example"})
	reg := durable.NewRegistry()
	_ = reg.Add(shout, upper)
	eng, _ := engine.New(engine.Options{Backend: be, Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	_ = eng.Start(ctx)
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		eng.Stop(sctx)
	}()
	c := client.New(be, reg, eng)

	inst, err := client.Start(ctx, c, shout, []string{"hello", "durable", "go"})
	if err != nil {
		fmt.Println(err)
		return
	}
	words, err := inst.Wait(ctx) // a []string
	fmt.Println(words, err)
	st, _ := inst.Status(ctx)
	progress, _ := client.CustomStatus[map[string]int](st)
	fmt.Println(st.RuntimeStatus, progress["words"])

	failing, _ := client.Start(ctx, c, shout, []string{"ok", ""})
	_, err = failing.Wait(ctx)
	var fe *client.FailedError
	if errors.As(err, &fe) {
		fmt.Println(fe.Failure.InnerFailure.ErrorMessage)
	}
	// Output:
	// [HELLO DURABLE GO] <nil>
	// Completed 3
	// empty word
}
