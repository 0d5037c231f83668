// Package durable is the orchestration programming model and its
// deterministic replay core.
//
// Orchestrators and activities are plain Go functions with typed inputs and
// outputs, registered by name:
//
//	var Hello = durable.NewActivity("Hello", func(ctx context.Context, city string) (string, error) {
//		return "Hello " + city + "!", nil
//	})
//
//	var Sequence = durable.NewOrchestrator("Sequence", func(ctx *durable.Context, _ any) ([]string, error) {
//		a, err := Hello.Call(ctx, "Tokyo").Await()
//		...
//	})
//
// Durable entities are small stateful objects addressed by an EntityID
// (name and key) that run operations one at a time and keep a typed state:
//
//	var Counter = durable.NewEntity("Counter", durable.Operations[int]{
//		"add": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
//			ctx.SetState(ctx.State() + n)
//			return nil
//		}),
//	})
//
// The engine hands an entity a batch of operations (through
// taskhub/internal/replay); an operation that fails, by an error or a
// panic, leaves the state as it was and sends nothing, and the batch goes
// on. The new state, the results and what the successful operations sent
// are committed together.
//
// Orchestrations signal entities (Context.SignalEntity, SignalEntityAt),
// call them and wait for the result (CallEntity), and lock a set of them
// in a critical section (Context.LockEntities) under Durable Functions'
// rules. Each message is an EventSent action to the entity's instance ID
// "@name@key" in Durable Task's request format; a response comes back as
// an event named by the request's ID, which no WaitForExternalEvent sees.
//
// The replay core (an unexported executor, which the engine drives through
// taskhub/internal/replay) runs an orchestrator as a coroutine against its
// history: each Await that cannot be satisfied from history parks the
// coroutine and hands control back to the executor, which returns the new
// actions (activity calls, completion) for the engine to checkpoint. The
// coroutine stays parked between episodes, so a cached executor resumes
// without replaying; a fresh executor replays the whole history first.
// Unwinding a parked coroutine uses runtime.Goexit, which recover() in user
// code cannot intercept.
//
// The package knows nothing about storage, queues or HTTP, and exports the
// programming model only: CallHTTP describes requests that the built-in
// activity of package taskhub/durablehttp makes.
package durable
