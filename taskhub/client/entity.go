package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/dtrace"
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
	r := history.EntityRequest{Operation: operation, Signal: true, Input: raw, ID: newRequestID(), Timestamp: t}
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
	// Durable Task's signal span: entity:{name}:{operation}, a Producer
	// child of the caller's span; the request carries it as the parent of
	// the entity's operation span.
	ctx, span := c.tracer.Start(ctx, dtrace.EntitySpanName(id.Name, operation), trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(dtrace.Type.String(dtrace.TypeEntity), dtrace.Operation.String(dtrace.SignalEntity),
			dtrace.EventTargetInstanceID.String(id.String()))
		if !r.Due.IsZero() {
			span.SetAttributes(dtrace.ScheduledTime.String(dtrace.FormatFireAt(r.Due)))
		}
		if err := r.SetTraceContext(dtrace.Context(span.SpanContext())); err != nil {
			return fmt.Errorf("client: signal entity %q: %w", id, err)
		}
	}
	err := c.signal(ctx, id, r, t, delay)
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// signal sends request r to entity id, hidden for delay.
func (c *Client) signal(ctx context.Context, id history.EntityID, r history.EntityRequest, t time.Time, delay time.Duration) error {
	ev, err := history.NewEntityRequestEvent(r, t)
	if err != nil {
		return fmt.Errorf("client: signal entity %q: %w", id, err)
	}
	msg := backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: id.String()}}
	if delay > 0 {
		r, err := c.be.SendControl(ctx, msg, delay)
		if err != nil {
			return fmt.Errorf("client: signal entity %q: %w", id, err)
		}
		c.pollWhenVisible(id.String(), r, delay)
		return nil
	}
	return c.deliver(ctx, id.String(), msg)
}

// newRequestID returns a random request ID as Durable Task's client makes
// it (ClientEntityHelpers.EmitOperationSignal's Guid.NewGuid(), written by
// Newtonsoft as Guid.ToString(): 36 lowercase characters with hyphens), a
// version 4 UUID.
func newRequestID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
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

// DefaultEmptyEntityIdle is how long an empty entity must have been idle
// before CleanEntityStorage removes it, unless
// CleanEntityStorageOptions.EmptyFor says otherwise. It is Durable Task
// Azure Storage's default EntityMessageReorderWindow (30 minutes), the age
// past which it removes empty entities; it is well over the 10 minutes for
// which our engine keeps the IDs of applied requests to drop redelivered
// copies, so that removing an entity cannot make a late copy apply twice.
const DefaultEmptyEntityIdle = 30 * time.Minute

// OrphanedLockReleaseID is the request ID of the release CleanEntityStorage
// sends for an orphaned lock, as Durable Task's does (it does not know the
// lock request's ID).
const OrphanedLockReleaseID = "fix-orphaned-lock"

// CleanEntityStorageOptions say what CleanEntityStorage does.
type CleanEntityStorageOptions struct {
	// RemoveEmptyEntities purges the instances of entities that have no
	// state, no queued requests and no lock holder, and have been idle
	// for EmptyFor.
	RemoveEmptyEntities bool
	// ReleaseOrphanedLocks sends a release to every entity locked by an
	// orchestration that no longer exists or no longer runs.
	ReleaseOrphanedLocks bool
	// EmptyFor is how long an empty entity must have been idle (since its
	// row was last updated) to be removed; 0 means DefaultEmptyEntityIdle.
	EmptyFor time.Duration
}

// CleanEntityStorageResult counts what CleanEntityStorage did.
type CleanEntityStorageResult struct {
	// EmptyEntitiesRemoved is the number of empty entities purged.
	EmptyEntitiesRemoved int
	// OrphanedLocksReleased is the number of releases sent.
	OrphanedLocksReleased int
}

// CleanEntityStorage goes through every entity of the task hub, page by
// page, and does what opts asks, as Durable Task's CleanEntityStorageAsync
// does (DurableTask.AzureStorage/EntityTrackingStoreQueries.cs):
//
//   - An entity whose status (the Instances row's CustomStatus) names a
//     lock holder whose instance does not exist or is neither Running nor
//     Suspended (a missing or Pending row whose history has started counts
//     as running, see holderRunning) gets a "release" message from that holder with the ID
//     OrphanedLockReleaseID (ClientEntityHelpers.EmitUnlockForOrphanedLock);
//     the entity frees the lock when it processes it. The release is sent
//     again on every run until then, which is harmless.
//   - An entity whose status says it has no state, no queued requests and
//     no lock, and whose row was last updated more than EmptyFor ago, is
//     purged (history and row). Durable Task waits for its message reorder
//     window (30 minutes by default) for the same reason: a message to the
//     entity that is still in flight must find the records it is checked
//     against. The row is read again just before the purge, and the entity
//     is kept if it ran a batch since it was listed. A message that arrives
//     after the purge starts the entity afresh, as for an entity that never
//     existed.
//
// Rows without an entity status (an entity that has not run a batch) are
// left alone. Unlike Durable Task, which stops after 5 seconds and returns a
// continuation that the Durable Functions extension does not follow, it
// works through all entities, as the extension's own loop for older
// backends does (DurableClient.CleanEntityStorageLegacyAsync); bound it with
// ctx. The counts are of what was done before an error; an error names the
// entity.
func (c *Client) CleanEntityStorage(ctx context.Context, opts CleanEntityStorageOptions) (CleanEntityStorageResult, error) {
	var res CleanEntityStorageResult
	if !opts.RemoveEmptyEntities && !opts.ReleaseOrphanedLocks {
		return res, nil
	}
	idle := opts.EmptyFor
	if idle <= 0 {
		idle = DefaultEmptyEntityIdle
	}
	q := backend.InstanceQuery{InstanceIDPrefix: "@"}
	for {
		rows, next, err := c.be.QueryInstances(ctx, q)
		if err != nil {
			return res, fmt.Errorf("client: clean entity storage: list entities: %w", err)
		}
		now := time.Now()
		for _, row := range rows {
			id, ok := history.ParseEntityID(row.InstanceID)
			if !ok || row.CustomStatus == "" {
				continue
			}
			status, err := history.ParseEntityStatus(row.CustomStatus)
			if err != nil {
				return res, fmt.Errorf("client: clean entity storage: entity %q: %w", id, err)
			}
			if opts.ReleaseOrphanedLocks && status.LockedBy != "" {
				released, err := c.releaseOrphanedLock(ctx, id, status.LockedBy)
				if err != nil {
					return res, err
				}
				if released {
					res.OrphanedLocksReleased++
				}
			}
			empty := !status.EntityExists && status.QueueSize == 0 && status.LockedBy == ""
			if opts.RemoveEmptyEntities && empty && now.Sub(row.LastUpdatedTime) > idle {
				removed, err := c.removeEmptyEntity(ctx, id, row)
				if err != nil {
					return res, err
				}
				if removed {
					res.EmptyEntitiesRemoved++
				}
			}
		}
		if next == "" {
			return res, nil
		}
		q.Continuation = next
	}
}

// releaseOrphanedLock sends entity id a release from holder if holder is
// not a running orchestration, and reports whether it did.
func (c *Client) releaseOrphanedLock(ctx context.Context, id history.EntityID, holder string) (bool, error) {
	running, err := c.holderRunning(ctx, holder)
	if err != nil {
		return false, fmt.Errorf("client: clean entity storage: entity %q: read its lock holder %q: %w", id, holder, err)
	}
	if running {
		return false, nil
	}
	ev, err := history.NewEntityReleaseEvent(history.EntityRelease{ParentInstanceID: holder, ID: OrphanedLockReleaseID}, history.StorageTime(time.Now()))
	if err != nil {
		return false, fmt.Errorf("client: clean entity storage: entity %q: %w", id, err)
	}
	msg := backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: id.String()}}
	if err := c.deliver(ctx, id.String(), msg); err != nil {
		return false, fmt.Errorf("client: clean entity storage: release the orphaned lock of %q on entity %q: %w", holder, id, err)
	}
	return true, nil
}

// holderRunning reports whether the lock holder's instance is a running
// orchestration. As in Durable Task, a Running or Suspended row counts as
// running and a finished one does not. Unlike Durable Task, a missing or
// Pending row is not taken at its word: our engine writes an instance's
// Pending→Running row update, and a sub-orchestration's first row, a moment
// after the episode's history (engine.Options.StatusFlushDelay), so such a
// holder counts as running when its history has started and not ended.
func (c *Client) holderRunning(ctx context.Context, holder string) (bool, error) {
	row, err := c.be.GetInstance(ctx, holder, false)
	switch {
	case errors.Is(err, backend.ErrNotFound):
	case err != nil:
		return false, err
	case row.Status == history.StatusRunning || row.Status == history.StatusSuspended:
		return true, nil
	case row.Status != history.StatusPending:
		return false, nil
	}
	h, err := c.be.LoadHistory(ctx, holder)
	if err != nil {
		return false, err
	}
	started := false
	for _, ev := range h.Events {
		switch {
		case ev.Type == history.ExecutionStarted:
			started = true
		case ev.Type.EndsExecution() || ev.Type == history.ExecutionTerminated || ev.Type == history.ExecutionFailed:
			return false, nil
		}
	}
	return started, nil
}

// removeEmptyEntity purges entity id, listed as listed, unless it ran a
// batch since (a new execution) or its row is gone; it reports whether it
// purged.
func (c *Client) removeEmptyEntity(ctx context.Context, id history.EntityID, listed backend.InstanceState) (bool, error) {
	row, err := c.be.GetInstance(ctx, id.String(), false)
	if errors.Is(err, backend.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("client: clean entity storage: entity %q: %w", id, err)
	}
	if row.ExecutionID != listed.ExecutionID || row.CustomStatus != listed.CustomStatus || !row.LastUpdatedTime.Equal(listed.LastUpdatedTime) {
		return false, nil
	}
	if err := c.be.PurgeInstance(ctx, id.String()); err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			return false, nil
		}
		return false, fmt.Errorf("client: clean entity storage: remove empty entity %q: %w", id, err)
	}
	return true, nil
}
