package durable

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// orchestratorFunc is the untyped form of an orchestrator that the engine
// runs: it returns the output as JSON text ("" for null).
type orchestratorFunc func(ctx *Context) (string, error)

// activityFunc is the untyped form of an activity that the engine runs: it
// takes and returns JSON text ("" for null).
type activityFunc = replay.ActivityFunc

// Definition is a named orchestrator, activity or entity that can be
// registered.
type Definition interface {
	// Name is the function name used in history and on the wire.
	Name() string
	register(r *Registry) error
}

// Registry maps function names to code. It is safe for concurrent use.
type Registry struct {
	mu            sync.RWMutex
	orchestrators map[string]orchestratorFunc
	activities    map[string]activityFunc
	entities      map[string]registeredEntity // by lowercased name
	httpPoll      time.Duration               // see SetHTTPPollInterval
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{orchestrators: map[string]orchestratorFunc{}, activities: map[string]activityFunc{}}
}

// Add registers definitions. A name registered twice is an error (entity
// names are case-insensitive: "Counter" and "counter" are one name).
func (r *Registry) Add(defs ...Definition) error {
	for _, d := range defs {
		if d.Name() == "" {
			return fmt.Errorf("durable: cannot register a function with an empty name")
		}
		if err := d.register(r); err != nil {
			return err
		}
	}
	return nil
}

// addOrchestrator registers an untyped orchestrator.
func (r *Registry) addOrchestrator(name string, fn orchestratorFunc) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.orchestrators[name]; dup {
		return fmt.Errorf("durable: orchestrator %q registered twice", name)
	}
	r.orchestrators[name] = fn
	return nil
}

// addActivity registers an untyped activity.
func (r *Registry) addActivity(name string, fn activityFunc) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.activities[name]; dup {
		return fmt.Errorf("durable: activity %q registered twice", name)
	}
	r.activities[name] = fn
	return nil
}

// SetHTTPPollInterval sets the app's default wait between the polls of a
// 202 that CallHTTP follows when the response has no Retry-After (0 =
// DefaultHTTPPollInterval). Orchestrators replayed after a change wait the
// new interval for the polls they have not scheduled yet.
func (r *Registry) SetHTTPPollInterval(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.httpPoll = d
}

// httpPollInterval returns the interval SetHTTPPollInterval set.
func (r *Registry) httpPollInterval() time.Duration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.httpPoll
}

// orchestrator returns the orchestrator registered under name.
func (r *Registry) orchestrator(name string) (orchestratorFunc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.orchestrators[name]
	return fn, ok
}

// activity returns the activity registered under name.
func (r *Registry) activity(name string) (activityFunc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.activities[name]
	return fn, ok
}

// EntityNames lists the registered entities' names (lowercased), sorted.
func (r *Registry) EntityNames() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.entities))
	for n := range r.entities {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// OrchestratorNames lists the registered orchestrators, sorted.
func (r *Registry) OrchestratorNames() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.orchestrators))
	for n := range r.orchestrators {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Orchestrator is a typed orchestrator definition.
type Orchestrator[In, Out any] struct {
	name string
	fn   func(ctx *Context, input In) (Out, error)
}

// NewOrchestrator defines an orchestrator with a typed input and output.
// The input is decoded from JSON into In; the output is encoded as JSON.
func NewOrchestrator[In, Out any](name string, fn func(ctx *Context, input In) (Out, error)) *Orchestrator[In, Out] {
	return &Orchestrator[In, Out]{name: name, fn: fn}
}

// Name returns the orchestrator's name.
func (o *Orchestrator[In, Out]) Name() string { return o.name }

func (o *Orchestrator[In, Out]) register(r *Registry) error {
	return r.addOrchestrator(o.name, o.untyped)
}

func (o *Orchestrator[In, Out]) untyped(ctx *Context) (string, error) {
	var in In
	if err := decodeJSON(ctx.input, &in); err != nil {
		return "", &InputError{Function: o.name, Kind: "orchestrator", Type: fmt.Sprintf("%T", in), Err: err}
	}
	out, err := o.fn(ctx, in)
	if err != nil {
		return "", err
	}
	return encodeJSON(out)
}

// Activity is a typed activity definition.
type Activity[In, Out any] struct {
	name string
	fn   func(ctx context.Context, input In) (Out, error)
}

// NewActivity defines an activity with a typed input and output.
func NewActivity[In, Out any](name string, fn func(ctx context.Context, input In) (Out, error)) *Activity[In, Out] {
	return &Activity[In, Out]{name: name, fn: fn}
}

// Name returns the activity's name.
func (a *Activity[In, Out]) Name() string { return a.name }

func (a *Activity[In, Out]) register(r *Registry) error {
	return r.addActivity(a.name, a.untyped)
}

func (a *Activity[In, Out]) untyped(ctx context.Context, input string) (string, error) {
	var in In
	if err := decodeJSON(input, &in); err != nil {
		return "", &InputError{Function: a.name, Kind: "activity", Type: fmt.Sprintf("%T", in), Err: err}
	}
	out, err := a.fn(ctx, in)
	if err != nil {
		return "", err
	}
	return encodeJSON(out)
}

// Call schedules the activity from an orchestrator. The returned task
// completes with the activity's typed result.
func (a *Activity[In, Out]) Call(ctx *Context, input In, opts ...CallOption) *Task[Out] {
	return CallActivity[Out](ctx, a.name, input, opts...)
}

// InputError reports an input that does not fit the function's input type.
type InputError struct {
	Function string
	Kind     string // "orchestrator", "activity" or "entity"
	// Operation is the entity operation whose input it was (Kind "entity").
	Operation string
	Type      string
	Err       error
}

// Error implements error.
func (e *InputError) Error() string {
	if e.Kind == "entity" {
		return fmt.Sprintf("entity %q operation %q: input does not fit type %s: %v", e.Function, e.Operation, e.Type, e.Err)
	}
	return fmt.Sprintf("%s %q: input does not fit type %s: %v", e.Kind, e.Function, e.Type, e.Err)
}

// Unwrap returns the JSON decoding error.
func (e *InputError) Unwrap() error { return e.Err }

// ErrorType implements the ErrorType convention.
func (e *InputError) ErrorType() string { return "InputError" }

// decodeJSON decodes JSON text into v; "" means null and leaves v zero.
func decodeJSON(text string, v any) error {
	if text == "" {
		return nil
	}
	return json.Unmarshal([]byte(text), v)
}

// encodeJSON encodes v as JSON text.
func encodeJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("durable: cannot encode %T as JSON: %w", v, err)
	}
	return string(b), nil
}
