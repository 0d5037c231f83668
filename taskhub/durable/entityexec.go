package durable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// executeBatch runs a batch of operations on the entity, one at a time, in
// order: each sees the state the previous one left. A failed operation
// (error or panic) leaves the state as it was before it and sends nothing;
// the batch goes on.
func (e *Entity[S]) executeBatch(ctx context.Context, b replay.EntityBatch) replay.EntityBatchResult {
	out := replay.EntityBatchResult{State: b.State, HasState: b.HasState,
		Results: make([]replay.EntityOperationResult, 0, len(b.Requests))}
	if !out.HasState {
		out.State = ""
	}
	base := b.Logger
	if base == nil {
		base = slog.Default()
	}
	for i, req := range b.Requests {
		c := &EntityContext[S]{ctx: ctx, id: b.ID, def: e, req: req, index: i,
			base:    base,
			stateIn: out.State, hadState: out.HasState, exists: out.HasState}
		res := replay.EntityOperationResult{RequestID: req.RequestID, IsSignal: req.IsSignal, StartTime: time.Now()}
		state, has, err := c.run()
		res.EndTime = time.Now()
		if err != nil {
			res.Failure = failureFromError(err)
			out.Results = append(out.Results, res)
			continue
		}
		out.State, out.HasState = state, has
		if !req.IsSignal {
			res.Result = c.result
		}
		out.Actions = append(out.Actions, c.actions...)
		out.Results = append(out.Results, res)
	}
	return out
}

// run runs the operation and returns the state it leaves, or why it failed.
func (c *EntityContext[S]) run() (state string, has bool, err error) {
	if err := c.dispatch(); err != nil {
		return "", false, err
	}
	if len(c.failures) > 0 {
		return "", false, errors.Join(c.failures...)
	}
	switch {
	case !c.touched:
		return c.stateIn, c.hadState, nil
	case !c.exists:
		return "", false, nil
	}
	s, err := encodeJSON(c.state)
	if err != nil {
		return "", false, fmt.Errorf("durable: %s operation %q: state: %w", c.id, c.req.Operation, err)
	}
	return s, true, nil
}

// dispatch finds and calls the operation's code, turning a panic into a
// *PanicError.
func (c *EntityContext[S]) dispatch() (err error) {
	fn := c.def.fn
	if c.def.ops != nil {
		var ok bool
		fn, ok = c.def.ops[strings.ToLower(c.req.Operation)]
		switch {
		case ok:
		case strings.EqualFold(c.req.Operation, "delete"):
			fn = func(ctx *EntityContext[S]) error { ctx.DeleteState(); return nil }
		default:
			return c.UnknownOperation()
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Kind: fmt.Sprintf("entity %s operation %q", c.id, c.req.Operation),
				Value: fmt.Sprint(r), Stack: string(debug.Stack())}
		}
	}()
	return fn(c)
}
