// Package client starts orchestration instances and reads their status. It
// is what client functions (such as HttpStart) and the management API use.
//
// Start and Get are the typed form: they take an orchestrator definition
// and return an Instance whose Wait and Status give its output as the
// definition's output type. StartNew, GetStatus and WaitForCompletion work
// by name with JSON text, for orchestrators only known at run time.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/dtrace"
)

// Errors returned by the client; test with errors.Is.
var (
	// ErrInvalidInstanceID: the instance ID breaks the Durable Functions rules.
	ErrInvalidInstanceID = errors.New("invalid instance ID")
	// ErrUnknownOrchestrator: no orchestrator is registered under the name.
	ErrUnknownOrchestrator = errors.New("unknown orchestrator")
	// ErrInstanceExists: an instance with the ID is still pending, running or suspended.
	ErrInstanceExists = errors.New("instance already exists")
	// ErrNotFound: no instance has the ID.
	ErrNotFound = errors.New("instance not found")
	// ErrInvalidInput: the input is not valid JSON.
	ErrInvalidInput = errors.New("invalid input")
	// ErrInstanceFinished: the operation needs a Pending, Running or
	// Suspended instance, but it has finished.
	ErrInstanceFinished = errors.New("instance has finished")
	// ErrStartOutcomeUnknown: storage failed while a start was written, and
	// whether the instance was started cannot be told now. The start
	// message is kept, so the instance runs if its row was written; read
	// its status before starting it again.
	ErrStartOutcomeUnknown = errors.New("outcome of the start unknown")
)

// MaxInstanceIDLength is the longest instance ID Durable Functions accepts.
const MaxInstanceIDLength = 256

// Catalog tells which orchestrators exist.
type Catalog interface {
	OrchestratorNames() []string
}

// LocalEngine is the engine running in this process, if any. Starts for
// partitions it owns are handed over in memory, and completions are
// reported without polling. HandOffStart's rowETag yields the row's ETag
// once written, is closed if the start is withdrawn, or yields "" if the
// outcome of the row write is unknown (the engine then puts the message
// back in the queue).
type LocalEngine interface {
	OwnsPartitionOf(instanceID string) bool
	MessageVisibility() time.Duration
	HandOffStart(msg backend.Message, receipt backend.Receipt, row backend.InstanceState, fresh bool, rowETag <-chan string) bool
	Watch(instanceID string) (final <-chan backend.InstanceState, tracking bool, stop func())
	HandOff(msg backend.Message, receipt backend.Receipt) bool
	// PollPartition makes the engine poll control-queue partition p now,
	// if it owns it.
	PollPartition(p int)
	// ForgetFinished drops what the engine remembers of a finished
	// execution of instanceID: a new execution (restart, rewind) begins.
	ForgetFinished(instanceID string)
	// Status answers a status query from the engine's committed in-memory
	// state, when the engine owns and caches the running instance;
	// ok=false means read storage.
	Status(instanceID string) (st backend.InstanceState, ok bool)
}

// Client talks to a task hub.
type Client struct {
	be             backend.Backend
	catalog        Catalog
	local          LocalEngine
	defaultVersion string
	tracer         trace.Tracer
}

// New returns a client for the task hub behind be. catalog (may be nil)
// validates orchestrator names; local (may be nil) is the engine in this
// process.
func New(be backend.Backend, catalog Catalog, local LocalEngine) *Client {
	return &Client{be: be, catalog: catalog, local: local, tracer: otel.GetTracerProvider().Tracer(dtrace.ScopeName)}
}

// SetTracerProvider sets the provider of the client's spans
// (create_orchestration, orchestration_event, entity signals); otel.GetTracerProvider() by
// default. Call it before the client is used.
func (c *Client) SetTracerProvider(tp trace.TracerProvider) { c.tracer = tp.Tracer(dtrace.ScopeName) }

// SetDefaultVersion sets the orchestration version StartNew stamps on
// instances started without StartOptions.Version (Durable Functions'
// host.json defaultVersion); "" by default. Call it before the client is
// used.
func (c *Client) SetDefaultVersion(v string) { c.defaultVersion = v }

// DefaultVersion returns the version set by SetDefaultVersion.
func (c *Client) DefaultVersion() string { return c.defaultVersion }

// StartOptions tune StartNew. The input comes either as JSON text
// (RawInput: what the management API receives) or as a Go value (Input);
// Start, the typed form, encodes its input itself.
type StartOptions struct {
	// InstanceID is the caller's choice of ID; empty generates one.
	InstanceID string
	// RawInput is the input as JSON text ("" = null). It takes precedence
	// over Input.
	RawInput string
	// Input is encoded as JSON when RawInput is empty.
	Input any
	// Version is the instance's orchestration version (ExecutionStarted.
	// Version, the Instances Version column, durable.Context.Version); ""
	// takes the client's default version (SetDefaultVersion), as in Durable
	// Functions.
	Version string
}

// ValidateInstanceID applies the Durable Functions instance ID rules: at
// most 256 characters, none of / \ # ? or control characters, not starting
// with @, not empty. It must also be valid UTF-8: storage keeps text, so
// other bytes could not be stored and read back as they are.
func ValidateInstanceID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: it is empty", ErrInvalidInstanceID)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: %q is not valid UTF-8 (byte %#02x at position %d)", ErrInvalidInstanceID, id, id[invalidUTF8At(id)], invalidUTF8At(id))
	case len([]rune(id)) > MaxInstanceIDLength:
		return fmt.Errorf("%w: it has %d characters, more than %d", ErrInvalidInstanceID, len([]rune(id)), MaxInstanceIDLength)
	case strings.HasPrefix(id, "@"):
		return fmt.Errorf("%w: it starts with '@', which is reserved for entities", ErrInvalidInstanceID)
	}
	for i, r := range id {
		if strings.ContainsRune(`/\#?`, r) {
			return fmt.Errorf("%w: character %q at position %d is not allowed (none of / \\ # ?)", ErrInvalidInstanceID, r, i)
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: control character %U at position %d", ErrInvalidInstanceID, r, i)
		}
	}
	return nil
}

// invalidUTF8At returns the byte offset of the first invalid UTF-8
// sequence in s, or len(s).
func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i
			}
		}
	}
	return len(s)
}

// StartNew starts an instance of orchestrator name and returns its ID.
// Nothing is written when the name, ID or input is invalid. Starting over an
// instance that is still Pending, Running or Suspended fails with
// ErrInstanceExists; a finished instance is replaced by a new execution.
// When storage fails so that it cannot be told whether the start was
// written, the error wraps ErrStartOutcomeUnknown and names the ID.
func (c *Client) StartNew(ctx context.Context, name string, opts StartOptions) (id string, err error) {
	version := opts.Version
	if version == "" {
		version = c.defaultVersion
	}
	// Durable Task's create_orchestration span, a child of the caller's
	// span; the start message carries it as the execution's parent.
	ctx, span := c.tracer.Start(ctx, dtrace.SpanName(dtrace.CreateOrchestration, name, version), trace.WithSpanKind(trace.SpanKindProducer))
	defer func() {
		if span.IsRecording() && err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	return c.startNew(ctx, span, name, opts)
}

func (c *Client) startNew(ctx context.Context, span trace.Span, name string, opts StartOptions) (string, error) {
	if err := c.checkOrchestrator(name); err != nil {
		return "", err
	}
	input := opts.RawInput
	if input == "" && opts.Input != nil {
		b, err := json.Marshal(opts.Input)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrInvalidInput, err)
		}
		input = string(b)
	}
	if input != "" && !json.Valid([]byte(input)) {
		return "", fmt.Errorf("%w: the input is not valid JSON", ErrInvalidInput)
	}
	if !utf8.ValidString(input) {
		return "", fmt.Errorf("%w: the input is not valid UTF-8 (byte %#02x at position %d)", ErrInvalidInput, input[invalidUTF8At(input)], invalidUTF8At(input))
	}
	id := opts.InstanceID
	var existing *backend.InstanceState
	if id == "" {
		id = history.NewID()
	} else {
		if err := ValidateInstanceID(id); err != nil {
			return "", err
		}
		st, err := c.be.GetInstance(ctx, id, false)
		switch {
		case err == nil:
			if !st.Status.IsTerminal() {
				return "", fmt.Errorf("%w: instance %q is %s; wait for it to finish, or terminate or purge it first", ErrInstanceExists, id, st.Status)
			}
			existing = &st
			if c.local != nil {
				c.local.ForgetFinished(id) // WaitForCompletion must wait for the new execution
			}
		case !errors.Is(err, backend.ErrNotFound):
			return "", fmt.Errorf("client: read instance %q: %w", id, err)
		}
	}

	t := history.StorageTime(time.Now()) // the row and the start event agree exactly
	execID := history.NewID()
	start := history.NewEvent(history.ExecutionStarted, t)
	start.Instance = history.OrchestrationInstance{InstanceID: id, ExecutionID: execID}
	start.Name = name
	start.Input = input
	start.Version = opts.Version
	if start.Version == "" {
		start.Version = c.defaultVersion
	}
	row := backend.InstanceState{
		InstanceID: id, Name: name, Version: start.Version, ExecutionID: execID, Input: input,
		CreatedTime: t, LastUpdatedTime: t, Status: history.StatusPending,
	}
	if existing != nil {
		row.Generation = existing.Generation + 1
		row.ETag = existing.ETag
	}
	gen := row.Generation
	start.Generation = &gen
	if span.IsRecording() {
		span.SetAttributes(dtrace.Type.String(dtrace.TypeOrchestration), dtrace.TaskName.String(name),
			dtrace.InstanceID.String(id), dtrace.ExecutionID.String(execID))
		if start.Version != "" {
			span.SetAttributes(dtrace.TaskVersion.String(start.Version))
		}
		start.ParentTraceContext = dtrace.Context(span.SpanContext())
	}
	msg := backend.Message{Event: start, Target: start.Instance, ActivityID: history.NewID()}

	// The message goes first: a row without a message would be stuck in
	// Pending forever, while a message without a row is deferred until the
	// row appears (or discarded if it never does).
	local := c.local != nil && c.local.OwnsPartitionOf(id)
	delay := time.Duration(0)
	if local {
		delay = c.local.MessageVisibility()
	}
	receipt, err := c.be.SendControl(ctx, msg, delay)
	if err != nil {
		return "", fmt.Errorf("client: send start message for %q: %w", id, err)
	}
	if !local {
		c.pollIfOwnedNow(id)
	}
	// A brand-new instance is handed to the local engine right away: its
	// first episode overlaps with the row write below, and it starts no
	// activity until the row exists.
	var rowETag chan string
	handedOver := false
	if local && existing == nil {
		rowETag = make(chan string, 1)
		handedOver = c.local.HandOffStart(msg, receipt, row, true, rowETag)
		if !handedOver {
			rowETag = nil
		}
	}
	etag, outcome, err := c.writeStartRow(ctx, &row, existing)
	switch outcome {
	case rowTaken:
		if rowETag != nil {
			close(rowETag) // the engine abandons the start and deletes the message
		} else {
			// Withdraw our message; if that fails the worker discards it
			// because the row names another execution.
			_ = c.be.DeleteMessage(context.WithoutCancel(ctx), receipt)
		}
		return "", err
	case rowUnknown:
		// The message stays: the worker's start rule decides from what is
		// stored (it runs the start if the row names it, else discards it
		// once the row has not appeared for a while).
		if rowETag != nil {
			rowETag <- "" // the engine puts the message back in the queue
		} else if local {
			if _, verr := c.be.SetVisibility(context.WithoutCancel(ctx), receipt, 0); verr != nil {
				err = fmt.Errorf("%w (the start message becomes visible to the owner in %v)", err, delay)
			}
		}
		return "", err
	}
	if rowETag != nil {
		rowETag <- etag
	}
	row.ETag = etag
	if local && !handedOver {
		if existing != nil {
			handedOver = c.local.HandOffStart(msg, receipt, row, false, nil)
		}
		if !handedOver {
			// Ownership moved meanwhile: make the message visible to the owner.
			if _, err := c.be.SetVisibility(ctx, receipt, 0); err != nil {
				return "", fmt.Errorf("client: release start message for %q: %w", id, err)
			}
		}
	}
	return id, nil
}

// rowOutcome is what writeStartRow found out about a start's row.
type rowOutcome int

const (
	// rowWritten: the row names the new execution.
	rowWritten rowOutcome = iota
	// rowTaken: the row names an execution another client started, or the
	// instance it was to replace is live again.
	rowTaken
	// rowUnknown: whether the row was written cannot be told now.
	rowUnknown
)

// startRowAttempts bounds the writes of a start's Instances row.
const startRowAttempts = 3

// reconcileTimeout bounds the read that settles a failed row write; it runs
// even when the caller's context is done, so that the start message is
// handled by what storage says.
const reconcileTimeout = 15 * time.Second

// writeStartRow inserts (existing == nil) or replaces the Instances row of
// a start. After any error, including a conflict that may be the SDK's
// retry of a write that in fact committed, it reads the row back: if it
// names the new execution the start succeeded; if it names another one, a
// concurrent start won (rowTaken, ErrInstanceExists); if the write
// evidently did not land, it is tried again. When the row cannot be read,
// or the attempts run out, the outcome is rowUnknown
// (ErrStartOutcomeUnknown). It returns the row's ETag when written.
func (c *Client) writeStartRow(ctx context.Context, row *backend.InstanceState, existing *backend.InstanceState) (string, rowOutcome, error) {
	id, create := row.InstanceID, existing == nil
	for attempt := 1; ; attempt++ {
		var etag string
		var err error
		if create {
			etag, err = c.be.CreateInstance(ctx, *row)
		} else {
			etag, err = c.be.UpdateInstance(ctx, *row)
		}
		if err == nil {
			return etag, rowWritten, nil
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reconcileTimeout)
		cur, rerr := c.be.GetInstance(rctx, id, false)
		cancel()
		switch {
		case rerr == nil && cur.ExecutionID == row.ExecutionID:
			return cur.ETag, rowWritten, nil // it committed; only the answer was lost
		case rerr == nil && existing != nil && cur.ExecutionID == existing.ExecutionID && cur.Status.IsTerminal():
			row.ETag, create = cur.ETag, false // not replaced yet (and perhaps touched meanwhile)
		case rerr == nil && existing != nil && cur.ExecutionID == existing.ExecutionID:
			return "", rowTaken, fmt.Errorf("%w: instance %q is %s again", ErrInstanceExists, id, cur.Status)
		case rerr == nil:
			return "", rowTaken, fmt.Errorf("%w: instance %q was started concurrently by another client (its row names execution %s)", ErrInstanceExists, id, cur.ExecutionID)
		case errors.Is(rerr, backend.ErrNotFound):
			row.ETag, create = "", true // not written (or the replaced row was purged meanwhile)
		default:
			return "", rowUnknown, fmt.Errorf("%w: instance %q: writing its Instances row failed (%w), and reading it back failed too (%w)",
				ErrStartOutcomeUnknown, id, err, rerr)
		}
		if attempt == startRowAttempts || ctx.Err() != nil {
			return "", rowUnknown, fmt.Errorf("%w: instance %q: its Instances row could not be written in %d attempts: %w",
				ErrStartOutcomeUnknown, id, attempt, err)
		}
	}
}

func (c *Client) checkOrchestrator(name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: the orchestrator name %q is not valid UTF-8", ErrInvalidInput, name)
	}
	if c.catalog == nil {
		return nil
	}
	names := c.catalog.OrchestratorNames()
	for _, n := range names {
		if n == name {
			return nil
		}
	}
	return fmt.Errorf("%w: %q is not an orchestrator of this app (known: %s)", ErrUnknownOrchestrator, name, strings.Join(names, ", "))
}

// Status is the state of an instance as the management API reports it.
// Input, Output and CustomStatus are JSON text ("" = null); the output of
// a Failed instance is its failure ("ErrorType: message") and of a
// Terminated one the reason, as Durable Functions stores them. For typed
// values use Start or Get and the Instance they return.
type Status struct {
	InstanceID   string
	Name         string // the orchestrator's name
	Version      string
	ExecutionID  string // the current execution (ContinueAsNew and restarts begin new ones)
	Input        string
	Output       string
	CustomStatus string
	Status       history.OrchestrationStatus
	CreatedTime  time.Time
	// LastUpdatedTime is the time of the last recorded event.
	LastUpdatedTime time.Time
	// CompletedTime is zero until the instance has finished.
	CompletedTime time.Time
	// ScheduledStartTime is zero when the start was not deferred.
	ScheduledStartTime time.Time
	Tags               map[string]string
}

// statusOf is the client's view of an Instances row: the fields that fence
// storage writes (ETag, generation, history position) stay behind.
func statusOf(st backend.InstanceState) Status {
	return Status{
		InstanceID: st.InstanceID, Name: st.Name, Version: st.Version, ExecutionID: st.ExecutionID,
		Input: st.Input, Output: st.Output, CustomStatus: st.CustomStatus, Status: st.Status,
		CreatedTime: st.CreatedTime, LastUpdatedTime: st.LastUpdatedTime, CompletedTime: st.CompletedTime,
		ScheduledStartTime: st.ScheduledStartTime, Tags: st.Tags,
	}
}

// GetStatus reads an instance's status; ErrNotFound if it does not exist.
func (c *Client) GetStatus(ctx context.Context, id string, withInput bool) (Status, error) {
	if err := ValidateInstanceID(id); err != nil {
		return Status{}, err
	}
	if c.local != nil {
		if st, ok := c.local.Status(id); ok {
			if !withInput {
				st.Input = ""
			}
			return statusOf(st), nil
		}
	}
	st, err := c.be.GetInstance(ctx, id, withInput)
	if errors.Is(err, backend.ErrNotFound) {
		return Status{}, fmt.Errorf("%w: no instance has ID %q", ErrNotFound, id)
	}
	if err != nil {
		return Status{}, err
	}
	return statusOf(st), nil
}

// GetHistory reads the current execution's history of an instance.
func (c *Client) GetHistory(ctx context.Context, id string) ([]history.Event, error) {
	if err := ValidateInstanceID(id); err != nil {
		return nil, err
	}
	h, err := c.be.LoadHistory(ctx, id)
	if err != nil {
		return nil, err
	}
	return h.Events, nil
}

// WaitForCompletion waits until the instance is Completed, Failed,
// Terminated or Canceled and returns its status. An instance finished by
// the engine in this process is reported at once, without a storage read;
// otherwise the status is polled every pollInterval.
func (c *Client) WaitForCompletion(ctx context.Context, id string, pollInterval time.Duration) (Status, error) {
	if pollInterval <= 0 {
		pollInterval = time.Second
	}
	var done <-chan backend.InstanceState
	tracking := false
	if c.local != nil {
		var stop func()
		done, tracking, stop = c.local.Watch(id)
		defer stop()
	}
	for first := true; ; first = false {
		if !first || !tracking {
			st, err := c.GetStatus(ctx, id, true)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return st, err
			}
			if err == nil && st.Status.IsTerminal() {
				return st, nil
			}
		}
		t := time.NewTimer(pollInterval)
		select {
		case st := <-done:
			t.Stop()
			return statusOf(st), nil
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Status{}, ctx.Err()
		}
	}
}

// RaiseEvent sends an external event named name with data (JSON text, ""
// for null) to a Pending, Running or Suspended instance.
func (c *Client) RaiseEvent(ctx context.Context, id, name, data string) error {
	if name == "" {
		return fmt.Errorf("%w: the event name is empty", ErrInvalidInput)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: the event name %q is not valid UTF-8", ErrInvalidInput, name)
	}
	if data != "" && !json.Valid([]byte(data)) {
		return fmt.Errorf("%w: the event data is not valid JSON", ErrInvalidInput)
	}
	if !utf8.ValidString(data) {
		return fmt.Errorf("%w: the event data is not valid UTF-8 (byte %#02x at position %d)", ErrInvalidInput, data[invalidUTF8At(data)], invalidUTF8At(data))
	}
	ev := history.NewEvent(history.EventRaised, time.Now())
	ev.Name, ev.Input = name, data
	// Durable Task's orchestration_event span; the event carries it.
	ctx, span := c.tracer.Start(ctx, dtrace.SpanName(dtrace.OrchestrationEvent, name, ""), trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(dtrace.Type.String(dtrace.TypeEvent), dtrace.TaskName.String(name), dtrace.EventTargetInstanceID.String(id))
		ev.ParentTraceContext = dtrace.Context(span.SpanContext())
	}
	err := c.send(ctx, id, ev)
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// Terminate ends a Pending, Running or Suspended instance; reason becomes
// its output.
func (c *Client) Terminate(ctx context.Context, id, reason string) error {
	ev := history.NewEvent(history.ExecutionTerminated, time.Now())
	ev.Input = jsonString(reason)
	return c.send(ctx, id, ev)
}

// Suspend pauses an instance: events are kept until it is resumed.
func (c *Client) Suspend(ctx context.Context, id, reason string) error {
	ev := history.NewEvent(history.ExecutionSuspended, time.Now())
	ev.Reason = reason
	return c.send(ctx, id, ev)
}

// Resume continues a suspended instance where it was.
func (c *Client) Resume(ctx context.Context, id, reason string) error {
	ev := history.NewEvent(history.ExecutionResumed, time.Now())
	ev.Reason = reason
	return c.send(ctx, id, ev)
}

func jsonString(s string) string {
	if s == "" {
		return ""
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// send delivers a management event to a live instance: ErrNotFound for an
// unknown instance, ErrInstanceFinished for a finished one.
func (c *Client) send(ctx context.Context, id string, ev history.Event) error {
	st, err := c.GetStatus(ctx, id, false)
	if err != nil {
		return err
	}
	if st.Status.IsTerminal() {
		return fmt.Errorf("%w: instance %q is %s", ErrInstanceFinished, id, st.Status)
	}
	msg := backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: id}, ActivityID: history.NewID()}
	return c.deliver(ctx, id, msg)
}

// deliver sends a control message, handing it to the local engine when it
// owns the instance's partition.
func (c *Client) deliver(ctx context.Context, id string, msg backend.Message) error {
	ev := msg.Event
	local := c.local != nil && c.local.OwnsPartitionOf(id)
	delay := time.Duration(0)
	if local {
		delay = c.local.MessageVisibility()
	}
	r, err := c.be.SendControl(ctx, msg, delay)
	if err != nil {
		return fmt.Errorf("client: send %s to %q: %w", ev.Type, id, err)
	}
	if !local {
		c.pollIfOwnedNow(id)
	}
	if local && !c.local.HandOff(msg, r) {
		if _, err := c.be.SetVisibility(ctx, r, 0); err != nil {
			return fmt.Errorf("client: release %s for %q: %w", ev.Type, id, err)
		}
	}
	return nil
}

// pollIfOwnedNow covers a race with the local engine taking the
// partition of id: the message was sent visible because the engine did not
// own the partition when the client looked, but it may have claimed it and
// polled since, and then waits a whole backoff before it polls again.
func (c *Client) pollIfOwnedNow(id string) {
	if c.local != nil && c.local.OwnsPartitionOf(id) {
		c.local.PollPartition(c.be.PartitionOf(id))
	}
}

// pollWhenVisible makes the local engine poll id's partition once the
// message of receipt r, sent with delay, is visible, if the engine owns the
// partition then: it would otherwise find the message only at its next
// poll (see backend.VisibleWakes).
func (c *Client) pollWhenVisible(id string, r backend.Receipt, delay time.Duration) {
	if c.local == nil {
		return
	}
	for _, wait := range backend.VisibleWakes(r, delay) {
		time.AfterFunc(wait, func() { c.pollIfOwnedNow(id) })
	}
}

// ErrInstanceRunning: the operation needs a finished instance.
var ErrInstanceRunning = errors.New("instance is still running")

// ErrNotFailed: rewind applies to failed instances only.
var ErrNotFailed = errors.New("instance has not failed")

// Query filters ListInstances and PurgeBy.
type Query struct {
	Statuses         []history.OrchestrationStatus // empty = all
	CreatedFrom      time.Time                     // zero = unbounded
	CreatedTo        time.Time                     // zero = unbounded
	InstanceIDPrefix string
	PageSize         int32  // 0 = the backend's default
	Continuation     string // from a previous page
	WithInput        bool
	// IncludeEntities lists durable entities too (their instances, "@name@key");
	// by default they are left out, as Durable Task's clients leave them
	// out (ListEntities lists them). A prefix starting with '@' includes
	// them.
	IncludeEntities bool
}

func (q Query) backend() backend.InstanceQuery {
	return backend.InstanceQuery{
		Statuses: q.Statuses, CreatedFrom: q.CreatedFrom, CreatedTo: q.CreatedTo, InstanceIDPrefix: q.InstanceIDPrefix,
		PageSize: q.PageSize, Continuation: q.Continuation, WithInput: q.WithInput,
		ExcludeEntities: !q.IncludeEntities && !strings.HasPrefix(q.InstanceIDPrefix, "@"),
	}
}

// ListInstances returns one page of instances matching q and the
// continuation for the next page ("" on the last page).
func (c *Client) ListInstances(ctx context.Context, q Query) ([]Status, string, error) {
	rows, next, err := c.be.QueryInstances(ctx, q.backend())
	if err != nil {
		return nil, "", err
	}
	out := make([]Status, len(rows))
	for i, r := range rows {
		out[i] = statusOf(r)
	}
	return out, next, nil
}

// Purge deletes everything stored about a finished instance: its status,
// history and large payloads. A Pending, Running or Suspended instance is
// refused with ErrInstanceRunning (terminate it first).
func (c *Client) Purge(ctx context.Context, id string) error {
	st, err := c.GetStatus(ctx, id, false)
	if err != nil {
		return err
	}
	if !st.Status.IsTerminal() {
		return fmt.Errorf("%w: instance %q is %s; terminate it before purging", ErrInstanceRunning, id, st.Status)
	}
	return c.be.PurgeInstance(ctx, id)
}

// PurgeBy purges every finished instance matching q (non-terminal statuses
// in q are refused) and returns how many it deleted.
func (c *Client) PurgeBy(ctx context.Context, q Query) (int, error) {
	if len(q.Statuses) == 0 {
		q.Statuses = []history.OrchestrationStatus{history.StatusCompleted, history.StatusFailed, history.StatusTerminated, history.StatusCanceled}
	}
	for _, s := range q.Statuses {
		if !s.IsTerminal() {
			return 0, fmt.Errorf("%w: only finished instances can be purged, not %s ones", ErrInvalidInput, s)
		}
	}
	q.Continuation, q.WithInput = "", false
	n := 0
	for {
		page, next, err := c.be.QueryInstances(ctx, q.backend())
		if err != nil {
			return n, err
		}
		for _, st := range page {
			if err := c.be.PurgeInstance(ctx, st.InstanceID); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return n, err
			}
			n++
		}
		if next == "" {
			return n, nil
		}
		q.Continuation = next
	}
}

// Rewind makes a Failed instance run its failed activities and
// sub-orchestrations again, keeping every step that succeeded. reason is
// recorded in the instance's history.
func (c *Client) Rewind(ctx context.Context, id, reason string) error {
	st, err := c.GetStatus(ctx, id, false)
	if err != nil {
		return err
	}
	switch {
	case st.Status == history.StatusFailed:
	case st.Status.IsTerminal():
		return fmt.Errorf("%w: instance %q is %s", ErrInstanceFinished, id, st.Status)
	default:
		return fmt.Errorf("%w: instance %q is %s; only failed instances can be rewound", ErrNotFailed, id, st.Status)
	}
	// A GenericEvent carrying the reason, as Durable Task's legacy rewind
	// sends: every Durable Task reader knows it (ExecutionRewound, which
	// the engine also accepts, is unknown before November 2025).
	if c.local != nil {
		c.local.ForgetFinished(id)
	}
	ev := history.NewEvent(history.GenericEvent, time.Now())
	ev.Data = reason
	msg := backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: id}, ActivityID: history.NewID()}
	return c.deliver(ctx, id, msg)
}

// Restart starts a finished (or any, with newID) instance again with the
// same orchestrator and input: under a new generated ID when newID is
// true, else under the same ID (which must have finished). It returns the
// ID of the new instance.
func (c *Client) Restart(ctx context.Context, id string, newID bool) (string, error) {
	st, err := c.GetStatus(ctx, id, true)
	if err != nil {
		return "", err
	}
	opts := StartOptions{RawInput: st.Input}
	if !newID {
		opts.InstanceID = id
	}
	return c.StartNew(ctx, st.Name, opts)
}
