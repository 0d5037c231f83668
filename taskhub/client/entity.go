package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// ErrUnknownEntity: no entity is registered under the name.
var ErrUnknownEntity = errors.New("unknown entity")

// EntityCatalog tells which entities exist; a Catalog that implements it
// (durable.Registry does) makes SignalEntity check entity names.
type EntityCatalog interface {
	EntityNames() []string
}

// SignalOptions tune SignalEntity.
type SignalOptions struct {
	// At delivers the signal at this time instead of at once.
	At time.Time
}

// SignalEntity sends the one-way operation with input (a Go value encoded
// as JSON; nil for none) to the entity id, as Durable Task's client does:
// an "op" message (or "op@{time}", hidden until then, with opts.At) to the
// entity's control queue with a fresh request ID. The entity need not
// exist: it starts with its first message.
func (c *Client) SignalEntity(ctx context.Context, id history.EntityID, operation string, input any, opts ...SignalOptions) error {
	id = history.NewEntityID(id.Name, id.Key)
	if err := id.Validate(); err != nil {
		return fmt.Errorf("client: signal entity: %w", err)
	}
	if err := c.checkEntity(id.Name); err != nil {
		return err
	}
	if operation == "" {
		return fmt.Errorf("%w: the operation name for entity %q is empty", ErrInvalidInput, id)
	}
	var raw string
	if input != nil {
		b, err := json.Marshal(input)
		if err != nil {
			return fmt.Errorf("%w: the input of operation %q on entity %q: %v", ErrInvalidInput, operation, id, err)
		}
		raw = string(b)
	}
	t := history.StorageTime(time.Now())
	r := history.EntityRequest{Operation: operation, Signal: true, Input: raw, ID: history.NewID(), Timestamp: t}
	var delay time.Duration
	for _, o := range opts {
		if !o.At.IsZero() {
			r.Due = history.StorageTime(o.At)
			r.Timestamp = r.Due
		}
	}
	if !r.Due.IsZero() {
		delay = max(time.Until(r.Due), 0)
	}
	ev, err := history.NewEntityRequestEvent(r, t)
	if err != nil {
		return fmt.Errorf("client: signal entity %q: %w", id, err)
	}
	msg := backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: id.String()}}
	if delay > 0 {
		if _, err := c.be.SendControl(ctx, msg, delay); err != nil {
			return fmt.Errorf("client: signal entity %q: %w", id, err)
		}
		return nil
	}
	return c.deliver(ctx, id.String(), msg)
}

// checkEntity reports whether name is an entity of this app (when the
// catalog can tell).
func (c *Client) checkEntity(name string) error {
	cat, ok := c.catalog.(EntityCatalog)
	if !ok {
		return nil
	}
	names := cat.EntityNames()
	if slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) }) {
		return nil
	}
	return fmt.Errorf("%w: %q is not an entity of this app (known: %s)", ErrUnknownEntity, name, strings.Join(names, ", "))
}

// EntityState is what ReadEntityState returns.
type EntityState struct {
	// ID is the entity.
	ID history.EntityID
	// Exists reports whether the entity has state.
	Exists bool
	// State is the entity's state as JSON text ("" when it has none).
	State string
	// LastOperationTime is when its last batch of operations ran.
	LastOperationTime time.Time
}

// ReadEntityState reads an entity's state from its Instances row, as
// Durable Task keeps it (the scheduler state in the Input column, the
// last batch's time as CreatedTime). An entity that never ran, or has no
// state, is ErrNotFound.
func (c *Client) ReadEntityState(ctx context.Context, id history.EntityID) (EntityState, error) {
	id = history.NewEntityID(id.Name, id.Key)
	if err := id.Validate(); err != nil {
		return EntityState{}, fmt.Errorf("client: read entity state: %w", err)
	}
	row, err := c.be.GetInstance(ctx, id.String(), true)
	if errors.Is(err, backend.ErrNotFound) {
		return EntityState{}, fmt.Errorf("%w: entity %q does not exist", ErrNotFound, id)
	}
	if err != nil {
		return EntityState{}, fmt.Errorf("client: read entity %q: %w", id, err)
	}
	s, err := history.ParseEntitySchedulerState(row.Input)
	if err != nil {
		return EntityState{}, fmt.Errorf("client: entity %q has an unreadable scheduler state: %w", id, err)
	}
	if !s.Exists() {
		return EntityState{}, fmt.Errorf("%w: entity %q has no state", ErrNotFound, id)
	}
	return EntityState{ID: id, Exists: true, State: s.State, LastOperationTime: row.CreatedTime}, nil
}

// EntityQuery filters ListEntities.
type EntityQuery struct {
	// Name limits the list to the entities of this name (any case); "" lists
	// every entity.
	Name string
	// LastOperationFrom and LastOperationTo bound the time of an entity's
	// last batch of operations (zero: unbounded).
	LastOperationFrom, LastOperationTo time.Time
	// PageSize is the most rows one page reads (0: the backend's default);
	// a page may hold fewer entities, as entities without state are left out.
	PageSize int32
	// Continuation is the token a previous page returned.
	Continuation string
	// WithState fills in EntityState.State.
	WithState bool
}

// ListEntities returns one page of the entities that have state and match
// q, in instance ID order, and the continuation for the next page ("" on
// the last page). Like Durable Task's entity query it reads the Instances
// rows whose IDs start with "@" (or "@{name}@"), and reports their
// CreatedTime as the last operation time.
func (c *Client) ListEntities(ctx context.Context, q EntityQuery) ([]EntityState, string, error) {
	prefix := "@"
	if q.Name != "" {
		id := history.NewEntityID(q.Name, "k")
		if err := id.Validate(); err != nil {
			return nil, "", fmt.Errorf("client: list entities: %w", err)
		}
		prefix += id.Name + "@"
	}
	rows, next, err := c.be.QueryInstances(ctx, backend.InstanceQuery{InstanceIDPrefix: prefix,
		CreatedFrom: q.LastOperationFrom, CreatedTo: q.LastOperationTo, PageSize: q.PageSize,
		Continuation: q.Continuation, WithInput: true})
	if err != nil {
		return nil, "", fmt.Errorf("client: list entities: %w", err)
	}
	out := make([]EntityState, 0, len(rows))
	for _, row := range rows {
		id, ok := history.ParseEntityID(row.InstanceID)
		if !ok {
			continue
		}
		s, err := history.ParseEntitySchedulerState(row.Input)
		if err != nil {
			return nil, "", fmt.Errorf("client: entity %q has an unreadable scheduler state: %w", id, err)
		}
		if !s.Exists() {
			continue
		}
		st := EntityState{ID: id, Exists: true, LastOperationTime: row.CreatedTime}
		if q.WithState {
			st.State = s.State
		}
		out = append(out, st)
	}
	return out, next, nil
}
