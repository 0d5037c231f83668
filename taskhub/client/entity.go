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
