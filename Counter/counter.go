// Package counter is the sample's durable entity: a counter addressed by
// its key (entity ID Counter/{key}, instance "@counter@{key}"). It has no
// function.json: like orchestrators and activities, entities are triggered
// by the task hub inside the app, from its control queues, never by the
// Functions host. Signal it through the management API:
//
//	curl -X POST 'http://127.0.0.1:7071/api/durabletask/entities/Counter/c1?op=add' -d 5
//	curl http://127.0.0.1:7071/api/durabletask/entities/Counter/c1
package counter

import "github.com/go-durable/durablefunctions/taskhub/durable"

// Entity is the counter: "add" adds its int input to the state, "reset"
// sets it to 0, "get" returns it (to a caller; a signal's result is
// dropped), and the implicit "delete" deletes the state.
var Entity = durable.NewEntity("Counter", durable.Operations[int]{
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
