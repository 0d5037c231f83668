package durabletest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/durabletest"
)

// TestEntityMessagesNotRunYet: an orchestration that sends a message to an
// entity stops the run with ErrEntitiesNotSupported, naming the message
// and the entity, instead of delivering it to no one.
func TestEntityMessagesNotRunYet(t *testing.T) {
	counter := durable.NewEntityID("Counter", "k")
	for _, tc := range []struct {
		name string
		send func(ctx *durable.Context) error
		want string
	}{
		{"a signal", func(ctx *durable.Context) error { return ctx.SignalEntity(counter, "add", 1) },
			`sends the entity message "op" (task 0) to @counter@k`},
		{"a call", func(ctx *durable.Context) error {
			_, err := durable.CallEntity[int](ctx, counter, "get", nil).Await()
			return err
		}, `sends the entity message "op" (task 0) to @counter@k`},
		{"a lock", func(ctx *durable.Context) error { _, err := ctx.LockEntities(counter); return err },
			`sends the entity message "op" (task 0) to @counter@k`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orch := durable.NewOrchestrator("UsesCounter", func(ctx *durable.Context, _ any) (string, error) {
				return "", tc.send(ctx)
			})
			_, err := durabletest.Run(context.Background(), durabletest.New(), orch, nil)
			if !errors.Is(err, durabletest.ErrEntitiesNotSupported) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), `instance "`) {
				t.Fatalf("Run: %v; want ErrEntitiesNotSupported naming %s", err, tc.want)
			}
		})
	}
}
