// Package durable is a stand-in for the programming model with the same
// import path and the names the analyzer looks for (analysistest loads
// testdata in GOPATH mode; TestNamesMatchTheRealPackage keeps them honest).
package durable

import (
	"context"
	"log/slog"
	"time"
)

// Context is the orchestration context.
type Context struct{ now time.Time }

// CurrentTime is the replay-safe clock.
func (c *Context) CurrentTime() time.Time { return c.now }

// NewGUID is the replay-safe unique ID.
func (c *Context) NewGUID() string { return "guid" }

// Sleep is a durable timer.
func (c *Context) Sleep(d time.Duration) error { return nil }

// Logger is the replay-safe logger.
func (c *Context) Logger() *slog.Logger { return slog.Default() }

// Task is an awaitable result.
type Task[T any] struct{ v T }

// Await waits for the task.
func (t *Task[T]) Await() (T, error) { return t.v, nil }

// Awaitable is any task.
type Awaitable interface{ isTask() }

func (t *Task[T]) isTask() {}

// Orchestrator is a named orchestrator.
type Orchestrator[In, Out any] struct {
	fn func(*Context, In) (Out, error)
}

// NewOrchestrator defines an orchestrator.
func NewOrchestrator[In, Out any](name string, fn func(ctx *Context, input In) (Out, error)) *Orchestrator[In, Out] {
	return &Orchestrator[In, Out]{fn: fn}
}

// Activity is a named activity.
type Activity[In, Out any] struct {
	fn func(context.Context, In) (Out, error)
}

// NewActivity defines an activity.
func NewActivity[In, Out any](name string, fn func(ctx context.Context, input In) (Out, error)) *Activity[In, Out] {
	return &Activity[In, Out]{fn: fn}
}

// Call schedules the activity.
func (a *Activity[In, Out]) Call(ctx *Context, in In) *Task[Out] { return &Task[Out]{} }

// CallActivity schedules an activity by name.
func CallActivity[Out any](ctx *Context, name string, input any) *Task[Out] { return &Task[Out]{} }

// WhenAll waits for all tasks.
func WhenAll(ctx *Context, tasks ...Awaitable) error { return nil }

// WhenAny waits for the first task.
func WhenAny(ctx *Context, tasks ...Awaitable) (int, error) { return 0, nil }
