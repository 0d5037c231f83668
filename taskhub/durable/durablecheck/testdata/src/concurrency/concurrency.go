package concurrency

import "github.com/go-durable/durablefunctions/taskhub/durable"

var Fan = durable.NewOrchestrator("Fan", func(ctx *durable.Context, n int) (int, error) {
	ch := make(chan int, n)
	go func() { // want `^go statement in orchestrator "Fan": a goroutine runs outside the replay scheduler .*durable.WhenAll or durable.WhenAny`
		ch <- 1 // not reported again: the go statement is the finding
	}()
	ch <- 2   // want `^channel send in orchestrator "Fan": channel operations block outside the replay scheduler`
	v := <-ch // want `^channel receive in orchestrator "Fan"`
	select {  // want `^select statement in orchestrator "Fan": which case is chosen depends on goroutine scheduling, not on history; wait on tasks with durable.WhenAny`
	case x := <-ch:
		v += x
		ch <- x // want `channel send`
	default:
	}
	for x := range ch { // want `^range over a channel in orchestrator "Fan"`
		v += x
	}

	// Tasks and WhenAll/WhenAny are the way to wait for several things.
	a := durable.CallActivity[int](ctx, "A", 1)
	b := durable.CallActivity[int](ctx, "B", 2)
	if _, err := durable.WhenAny(ctx, a, b); err != nil {
		return 0, err
	}
	return v, durable.WhenAll(ctx, a, b)
})
