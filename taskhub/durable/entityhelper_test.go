package durable_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// runOperations runs one batch of calls ("op input") on the entity id of
// reg, starting from state (JSON, "" for none), as the engine does; it
// prints each outcome and the state left, and returns that state.
func runOperations(reg *durable.Registry, id durable.EntityID, state string, ops ...string) string {
	fn, ok := replay.LookupEntity(reg, id.Name)
	if !ok {
		fmt.Println("no entity", id.Name)
		return state
	}
	b := replay.EntityBatch{ID: id, State: state, HasState: state != ""}
	for i, op := range ops {
		name, input, _ := strings.Cut(op, " ")
		b.Requests = append(b.Requests, replay.EntityRequest{Operation: name, Input: input, RequestID: fmt.Sprint(i)})
	}
	out := fn(context.Background(), b)
	for i, r := range out.Results {
		switch {
		case r.Failure != nil:
			fmt.Printf("%s: failed: %s\n", ops[i], r.Failure.ErrorMessage)
		case r.Result != "":
			fmt.Printf("%s: %s\n", ops[i], r.Result)
		default:
			fmt.Printf("%s: ok\n", ops[i])
		}
	}
	if !out.HasState {
		fmt.Println("state: none")
		return ""
	}
	fmt.Println("state:", out.State)
	return out.State
}
