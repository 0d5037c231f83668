package durable_test

import (
	"fmt"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// Counter is a durable entity holding an int: "add" adds its input, "reset"
// sets it to 0, "get" returns it, and the implicit "delete" deletes it.
var Counter = durable.NewEntity("Counter", durable.Operations[int]{
	"add": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
		ctx.SetState(ctx.State() + n)
		return nil
	}),
	"reset": durable.Op(func(ctx *durable.EntityContext[int], _ struct{}) error {
		ctx.SetState(0)
		return nil
	}),
	"get": durable.OpResult(func(ctx *durable.EntityContext[int], _ struct{}) (int, error) {
		return ctx.State(), nil
	}),
})

// A Counter entity, registered like orchestrators and activities. The
// engine runs the operations that signals and calls deliver; here
// runOperations stands in for it and prints what each batch leaves.
func ExampleNewEntity() {
	reg := durable.NewRegistry()
	if err := reg.Add(Counter); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(reg.EntityNames(), Counter.ID("alice"))

	state := runOperations(reg, Counter.ID("alice"), "", "add 5", "add 2", "get", "add x", "get")
	state = runOperations(reg, Counter.ID("alice"), state, "reset", "add 1")
	runOperations(reg, Counter.ID("alice"), state, "delete", "get")
	// Output:
	// [counter] @counter@alice
	// add 5: ok
	// add 2: ok
	// get: 7
	// add x: failed: entity "counter" operation "add": input does not fit type int: invalid character 'x' looking for beginning of value
	// get: 7
	// state: 7
	// reset: ok
	// add 1: ok
	// state: 1
	// delete: ok
	// get: 0
	// state: none
}
