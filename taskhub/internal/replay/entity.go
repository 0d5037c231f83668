package replay

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// EntityRequest is one operation request delivered to an entity.
type EntityRequest struct {
	// Operation is the operation's name as the sender gave it.
	Operation string
	// Input is the operation's input as JSON text ("" = none).
	Input string
	// IsSignal is true for a one-way signal, false for a call that waits
	// for the result.
	IsSignal bool
	// RequestID identifies the request (its sender's message ID); it names
	// the result and seeds the IDs of what the operation sends.
	RequestID string
}

// EntityBatch is what the engine hands an entity to run: its state as
// committed and the operation requests to apply, in order.
type EntityBatch struct {
	// ID is the entity the batch runs on.
	ID history.EntityID
	// State is the committed state as JSON text, meaningful when HasState.
	State string
	// HasState reports whether the entity has state (it exists).
	HasState bool
	// Requests are the operations to run, one at a time, in this order.
	Requests []EntityRequest
	// Logger is the base of the operations' loggers (nil: slog.Default()).
	Logger *slog.Logger
}

// EntityOperationResult is the outcome of one request of a batch.
type EntityOperationResult struct {
	// RequestID is the request's ID.
	RequestID string
	// IsSignal repeats the request's kind: a signal's result goes to no one.
	IsSignal bool
	// Result is the JSON text the operation returned ("" = none; always ""
	// for a signal and for a failure).
	Result string
	// Failure is why the operation failed (nil: it succeeded). A failed
	// operation left neither a state change nor actions.
	Failure *history.FailureDetails
	// StartTime and EndTime are when the operation's code began and ended
	// (Durable Task's OperationResult.StartTimeUtc, EndTimeUtc): the times
	// of its span.
	StartTime, EndTime time.Time
}

// EntityActionKind tells the kinds of EntityAction apart.
type EntityActionKind int

// The things an entity operation can send.
const (
	// EntitySignal is a signal to an entity (possibly scheduled).
	EntitySignal EntityActionKind = iota + 1
	// EntityStartOrchestration is the start of a new orchestration.
	EntityStartOrchestration
)

// String names the kind.
func (k EntityActionKind) String() string {
	switch k {
	case EntitySignal:
		return "signal"
	case EntityStartOrchestration:
		return "start orchestration"
	}
	return "EntityActionKind(" + strconv.Itoa(int(k)) + ")"
}

// EntityAction is a message a successful operation sends, to be committed
// with the batch's new state.
type EntityAction struct {
	Kind EntityActionKind
	// Request is the index in the batch of the request that sent it.
	Request int
	// Input is the JSON text of the signal's or the orchestration's input
	// ("" = none).
	Input string

	// Target is the entity a signal goes to.
	Target history.EntityID
	// Operation is the signalled operation.
	Operation string
	// RequestID is the signal's own request ID: derived from the batch's
	// entity, the sending request's ID and the action's position, so that
	// a batch run again after a crash sends the same IDs.
	RequestID string
	// ScheduledTime is when a scheduled signal is due (zero: at once).
	ScheduledTime time.Time

	// Name is the orchestrator to start.
	Name string
	// InstanceID is the new orchestration's instance ID (given, or derived
	// like RequestID).
	InstanceID string
	// Version is the new orchestration's version (nil: the app's default).
	Version *string
}

// EntityBatchResult is everything the engine commits together for a batch.
type EntityBatchResult struct {
	// State is the entity's new state as JSON text, meaningful when
	// HasState; HasState false means the entity has no state (deleted or
	// never set).
	State    string
	HasState bool
	// Results has one entry per request, in the batch's order.
	Results []EntityOperationResult
	// Actions are the messages the successful operations sent, in order.
	Actions []EntityAction
}

// EntityFunc is entity code as the engine holds it: it runs a batch and
// returns its outcome. It does not fail as a whole: each operation's
// failure is in its result. ctx is handed to the operations.
type EntityFunc func(ctx context.Context, batch EntityBatch) EntityBatchResult

// LookupEntity returns the entity registered in reg (a *durable.Registry)
// under name (entity names are case-insensitive).
func LookupEntity(reg any, name string) (EntityFunc, bool) {
	h := installed()
	if h.Entity == nil {
		return nil, false
	}
	return h.Entity(reg, name)
}
