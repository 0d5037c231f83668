package durable

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// EntityID identifies a durable entity: its name (case-insensitive, kept
// lowercased) and its key (case-sensitive). String gives its Durable Task
// instance ID, "@{name}@{key}".
type EntityID = history.EntityID

// NewEntityID returns the ID of the entity name (lowercased) with key.
func NewEntityID(name, key string) EntityID { return history.NewEntityID(name, key) }

// Operation is one operation of an entity with state S. It reads its input
// with ctx.Input, the state with ctx.State, and returns an error to fail:
// the operation's state change and what it sent are then discarded. Op and
// OpResult build typed operations.
type Operation[S any] func(ctx *EntityContext[S]) error

// Operations maps operation names to their code. Operation names are
// matched case-insensitively, as Durable Functions' class-based entities
// do.
type Operations[S any] map[string]Operation[S]

// Op defines an operation with a typed input: the request's input is
// decoded from JSON into In (no input leaves it zero); an input that does
// not fit In fails the operation with an *InputError before fn runs.
func Op[S, In any](fn func(ctx *EntityContext[S], input In) error) Operation[S] {
	return func(ctx *EntityContext[S]) error {
		var in In
		if err := ctx.Input(&in); err != nil {
			return err
		}
		return fn(ctx, in)
	}
}

// OpResult defines an operation with a typed input, like Op, and a result:
// what fn returns is the result a caller gets (see EntityContext.Return).
func OpResult[S, In, Out any](fn func(ctx *EntityContext[S], input In) (Out, error)) Operation[S] {
	return func(ctx *EntityContext[S]) error {
		var in In
		if err := ctx.Input(&in); err != nil {
			return err
		}
		out, err := fn(ctx, in)
		if err != nil {
			return err
		}
		ctx.Return(out)
		return nil
	}
}

// Entity is a typed entity definition: a durable object of state S,
// addressed by an EntityID of its name, which runs operations one at a
// time.
type Entity[S any] struct {
	name    string
	ops     map[string]Operation[S] // lowercased names; nil for a function entity
	clash   []string                // operation names that differ only in case
	fn      Operation[S]            // function entity: one function for all operations
	initial func() S
}

// NewEntity defines an entity of state S with named operations. An entity
// defined with operations also answers "delete" (when ops has no operation
// of that name) by deleting its state, as Durable Functions' class-based
// entities do; any other name not in ops fails with an
// *UnknownOperationError.
//
//	counter := durable.NewEntity("Counter", durable.Operations[int]{
//		"add": durable.Op(func(ctx *durable.EntityContext[int], n int) error {
//			ctx.SetState(ctx.State() + n)
//			return nil
//		}),
//	})
func NewEntity[S any](name string, ops Operations[S]) *Entity[S] {
	e := &Entity[S]{name: name, ops: make(map[string]Operation[S], len(ops))}
	for op, fn := range ops {
		key := strings.ToLower(op)
		if _, dup := e.ops[key]; dup {
			e.clash = append(e.clash, op)
		}
		e.ops[key] = fn
	}
	return e
}

// NewEntityFunc defines an entity of state S as one function that runs
// every operation, dispatching on ctx.Operation() itself; for a name it
// does not know it should return ctx.UnknownOperation().
func NewEntityFunc[S any](name string, fn func(ctx *EntityContext[S]) error) *Entity[S] {
	return &Entity[S]{name: name, fn: fn}
}

// WithInitialState sets the state an operation sees when the entity has
// none (default: the zero S), e.g. an empty map. It returns e.
func (e *Entity[S]) WithInitialState(fn func() S) *Entity[S] {
	e.initial = fn
	return e
}

// Name returns the entity's name as defined (it is registered and
// addressed lowercased).
func (e *Entity[S]) Name() string { return e.name }

// ID returns the ID of this entity with key.
func (e *Entity[S]) ID(key string) EntityID { return NewEntityID(e.name, key) }

func (e *Entity[S]) register(r *Registry) error {
	if err := history.NewEntityID(e.name, "key").Validate(); err != nil { // the key is valid: the name is not
		return fmt.Errorf("durable: entity name %q cannot be registered: %w", e.name, err)
	}
	if e.ops == nil && e.fn == nil {
		return fmt.Errorf("durable: entity %q has no code", e.name)
	}
	if len(e.clash) > 0 {
		return fmt.Errorf("durable: entity %q defines operation %q twice (operation names are case-insensitive)", e.name, e.clash[0])
	}
	return r.addEntity(e.name, e.executeBatch)
}

// addEntity registers an untyped entity under its lowercased name.
func (r *Registry) addEntity(name string, fn replay.EntityFunc) error {
	key := strings.ToLower(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, dup := r.entities[key]; dup {
		return fmt.Errorf("durable: entity %q registered twice (as %q and %q; entity names are case-insensitive)", key, prev.name, name)
	}
	if r.entities == nil {
		r.entities = map[string]registeredEntity{}
	}
	r.entities[key] = registeredEntity{name: name, fn: fn}
	return nil
}

// registeredEntity is an entity in the registry, with the name it was
// defined with (for messages).
type registeredEntity struct {
	name string
	fn   replay.EntityFunc
}

// entity returns the entity registered under name, in any case.
func (r *Registry) entity(name string) (replay.EntityFunc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entities[strings.ToLower(name)]
	return e.fn, ok
}

// EntityContext is what an entity operation sees: the entity's ID and
// state, the operation's name and input, and the means to return a result
// and to send signals and start orchestrations. It is valid only during
// the operation.
type EntityContext[S any] struct {
	ctx      context.Context
	id       EntityID
	def      *Entity[S]
	req      replay.EntityRequest
	index    int          // the request's position in the batch
	base     *slog.Logger // the batch's logger; Logger adds the entity and operation
	logger   *slog.Logger
	stateIn  string // the state before the operation (JSON), if hadState
	hadState bool

	state    S
	exists   bool // the state exists now (as far as the operation goes)
	loaded   bool // state holds the decoded (or set) value
	touched  bool // SetState, DeleteState or State of an existing state: write back at the end
	result   string
	actions  []replay.EntityAction
	failures []error // deferred failures (encoding, bad targets, unreadable state)
}

// ID returns the entity's ID.
func (c *EntityContext[S]) ID() EntityID { return c.id }

// Operation returns the operation's name, as the sender gave it.
func (c *EntityContext[S]) Operation() string { return c.req.Operation }

// Context returns the context the entity runs under (canceled when the
// worker stops).
func (c *EntityContext[S]) Context() context.Context { return c.ctx }

// Logger returns a logger carrying the entity's ID and the operation.
func (c *EntityContext[S]) Logger() *slog.Logger {
	if c.logger == nil {
		c.logger = c.base.With("entity", c.id.String(), "operation", c.req.Operation)
	}
	return c.logger
}

// Input decodes the operation's input (JSON) into v, a pointer; without
// input v is left unchanged. An input that does not fit v is an
// *InputError naming the entity and the operation.
func (c *EntityContext[S]) Input(v any) error {
	if err := decodeJSON(c.req.Input, v); err != nil {
		return &InputError{Function: c.id.Name, Kind: "entity", Operation: c.req.Operation,
			Type: strings.TrimPrefix(fmt.Sprintf("%T", v), "*"), Err: err}
	}
	return nil
}

// HasState reports whether the entity has state: false for a new entity
// and after DeleteState (until SetState).
func (c *EntityContext[S]) HasState() bool { return c.exists }

// State returns the entity's state: the stored state decoded from JSON, or
// the initial state (see WithInitialState) when it has none. Changes reach
// the stored state through SetState; in-place changes to an existing state
// of a reference type (a map, a slice's elements, what a pointer points to)
// are kept too, since an existing state that was read is written back. A
// stored state that does not fit S fails the operation with an
// *EntityStateError (State then returns the initial state).
func (c *EntityContext[S]) State() S {
	if !c.loaded {
		c.loaded = true
		c.state = c.fresh()
		if c.exists {
			if err := decodeJSON(c.stateIn, &c.state); err != nil {
				c.failures = append(c.failures, &EntityStateError{Entity: c.id, Type: fmt.Sprintf("%T", c.state), Err: err})
				c.state = c.fresh()
			}
		}
	}
	if c.exists {
		c.touched = true
	}
	return c.state
}

// SetState replaces the entity's state (creating it if the entity had none).
func (c *EntityContext[S]) SetState(s S) {
	c.state, c.exists, c.loaded, c.touched = s, true, true, true
}

// DeleteState deletes the entity's state: once the operation succeeds the
// entity has none, and the next operation starts from the initial state.
// A SetState after it in the same operation creates the state again.
func (c *EntityContext[S]) DeleteState() {
	var zero S
	c.state, c.exists, c.loaded, c.touched = zero, false, false, true
}

// Return sets the operation's result, encoded as JSON, for a caller (a
// signal's result goes to no one). A later Return replaces it. A value
// that cannot be encoded fails the operation.
func (c *EntityContext[S]) Return(v any) {
	s, err := encodeJSON(v)
	if err != nil {
		c.failures = append(c.failures, fmt.Errorf("durable: %s operation %q: result: %w", c.id, c.req.Operation, err))
		return
	}
	c.result = s
}

// SignalEntity sends operation op with input (encoded as JSON; nil for
// none) to the entity id, one-way. The signal is sent only if the
// operation succeeds, together with its state change. An input that cannot
// be encoded, or an invalid id, fails the operation.
func (c *EntityContext[S]) SignalEntity(id EntityID, op string, input any) {
	c.signal(id, op, input, time.Time{})
}

// SignalEntityAt is SignalEntity with the signal delivered at time at (at
// once if at is not in the future).
func (c *EntityContext[S]) SignalEntityAt(id EntityID, op string, input any, at time.Time) {
	c.signal(id, op, input, at)
}

func (c *EntityContext[S]) signal(id EntityID, op string, input any, at time.Time) {
	id = history.NewEntityID(id.Name, id.Key)
	if err := id.Validate(); err != nil {
		c.failures = append(c.failures, fmt.Errorf("durable: %s operation %q: signal %q: %w", c.id, c.req.Operation, op, err))
		return
	}
	in, err := encodeJSON(input)
	if err != nil {
		c.failures = append(c.failures, fmt.Errorf("durable: %s operation %q: input of the signal %q to %s: %w", c.id, c.req.Operation, op, id, err))
		return
	}
	c.actions = append(c.actions, replay.EntityAction{Kind: replay.EntitySignal, Request: c.index, Input: in,
		Target: id, Operation: op, RequestID: c.nextID(), ScheduledTime: at})
}

// StartOrchestration starts a new instance of the orchestrator name with
// input (encoded as JSON), once the operation succeeds, and returns its
// instance ID. Options: WithInstanceID (default: an ID derived from the
// entity, the request and the position, so that a batch run again sends
// the same start) and WithVersion; other options fail the operation.
func (c *EntityContext[S]) StartOrchestration(name string, input any, opts ...CallOption) string {
	var o callOptions
	for _, opt := range opts {
		opt(&o)
	}
	fail := func(err error) string {
		c.failures = append(c.failures, fmt.Errorf("durable: %s operation %q: start of orchestration %q: %w", c.id, c.req.Operation, name, err))
		return ""
	}
	switch {
	case name == "":
		return fail(fmt.Errorf("no orchestrator name"))
	case o.retry != nil || o.timeout != 0:
		return fail(fmt.Errorf("WithRetry and WithTimeout do not apply to a start from an entity"))
	}
	in, err := encodeJSON(input)
	if err != nil {
		return fail(fmt.Errorf("input: %w", err))
	}
	id := c.nextID()
	if o.instanceID != "" {
		id = o.instanceID
	}
	c.actions = append(c.actions, replay.EntityAction{Kind: replay.EntityStartOrchestration, Request: c.index, Input: in,
		Name: name, InstanceID: id, Version: o.version})
	return id
}

// UnknownOperation returns the error an entity defined with NewEntityFunc
// returns for an operation name it does not know.
func (c *EntityContext[S]) UnknownOperation() error {
	return &UnknownOperationError{Entity: c.id, Operation: c.req.Operation}
}

// nextID returns a deterministic ID for the next action: a version-5 UUID
// over the entity, the request's ID and the action's position in the
// operation.
func (c *EntityContext[S]) nextID() string {
	return uuidV5(guidNamespace, fmt.Sprintf("%s_%s_%d", c.id, c.req.RequestID, len(c.actions)))
}

// fresh returns the initial state.
func (c *EntityContext[S]) fresh() S {
	if c.def.initial != nil {
		return c.def.initial()
	}
	var zero S
	return zero
}

// UnknownOperationError reports an operation that the entity does not
// define.
type UnknownOperationError struct {
	Entity    EntityID
	Operation string
}

// Error implements error.
func (e *UnknownOperationError) Error() string {
	return fmt.Sprintf("entity %q (%s) has no operation %q", e.Entity.Name, e.Entity, e.Operation)
}

// ErrorType implements the ErrorType convention.
func (e *UnknownOperationError) ErrorType() string { return "UnknownOperationError" }

// EntityStateError reports an entity's stored state that does not fit the
// entity's state type. The state is kept as it is.
type EntityStateError struct {
	Entity EntityID
	Type   string
	Err    error
}

// Error implements error.
func (e *EntityStateError) Error() string {
	return fmt.Sprintf("entity %s: stored state does not fit type %s: %v", e.Entity, e.Type, e.Err)
}

// Unwrap returns the JSON decoding error.
func (e *EntityStateError) Unwrap() error { return e.Err }

// ErrorType implements the ErrorType convention.
func (e *EntityStateError) ErrorType() string { return "EntityStateError" }
