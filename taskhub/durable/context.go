package durable

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// Context is handed to orchestrator code. Its methods must be called only
// from the orchestrator's own goroutine, and orchestrator code must be
// deterministic: use CurrentTime instead of time.Now, NewGUID instead of
// random IDs, activities for I/O, and durable timers instead of sleeping.
type Context struct {
	ex          *executor
	instanceID  string
	executionID string
	name        string
	version     string // the instance's orchestration version (ExecutionStarted.Version)
	input       string
	parent      string // parent instance ID of a sub-orchestration
	currentTime time.Time
	replaying   bool
	guidCounter int
	logger      *slog.Logger
}

// InstanceID returns the orchestration instance ID.
func (c *Context) InstanceID() string { return c.instanceID }

// ExecutionID returns the ID of the current execution of the instance.
func (c *Context) ExecutionID() string { return c.executionID }

// ParentInstanceID returns the instance ID of the orchestration that
// started this one as a sub-orchestration, or "".
func (c *Context) ParentInstanceID() string { return c.parent }

// Name returns the orchestrator name.
func (c *Context) Name() string { return c.name }

// Version returns the instance's orchestration version, fixed when it was
// started: the client's explicit version, else the app's default version
// (Durable Functions' host.json defaultVersion), else "" (see the README's
// "Orchestration versioning"). Sub-orchestrations and ContinueAsNew keep it
// unless a call says otherwise (WithVersion, WithNewVersion). Orchestrators
// branch on it to keep running old instances on the code paths they
// started with.
func (c *Context) Version() string { return c.version }

// CurrentTime returns the deterministic current time: the timestamp of the
// OrchestratorStarted event of the episode being run or replayed, exactly as
// history stores it (UTC, whole 100 ns ticks; see history.StorageTime), so
// the first run and every replay see the same value.
func (c *Context) CurrentTime() time.Time { return c.currentTime }

// IsReplaying reports whether the code is re-running past steps from history.
func (c *Context) IsReplaying() bool { return c.replaying }

// Input decodes the orchestration input into v.
func (c *Context) Input(v any) error { return decodeJSON(c.input, v) }

// MaxCustomStatusBytes is the largest custom status (as JSON) accepted.
const MaxCustomStatusBytes = 16 * 1024

// ErrCustomStatusTooLarge is returned by SetCustomStatus for a value whose
// JSON exceeds MaxCustomStatusBytes.
var ErrCustomStatusTooLarge = errors.New("custom status too large")

// SetCustomStatus publishes v (as JSON, at most 16 KB) in the instance's
// status, for progress reporting. nil clears it.
func (c *Context) SetCustomStatus(v any) error {
	if v == nil {
		c.ex.customStatus = ""
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("durable: custom status: %w", err)
	}
	if len(b) > MaxCustomStatusBytes {
		return fmt.Errorf("%w: %d bytes of JSON, the limit is %d", ErrCustomStatusTooLarge, len(b), MaxCustomStatusBytes)
	}
	c.ex.customStatus = string(b)
	return nil
}

// guidNamespace is the namespace of deterministic GUIDs in durabletask-dotnet
// (TaskOrchestrationContextWrapper.NewGuid), which .NET isolated Durable
// Functions and the Java, JavaScript and Go Durable Task SDKs share:
// 9e952958-5e33-4daf-827f-2fa12937b875, in RFC 4122 (network) byte order.
// The in-process WebJobs extension hashes with 9e952959-… instead (its
// "URL" namespace), so its GUIDs differ.
var guidNamespace = [16]byte{0x9e, 0x95, 0x29, 0x58, 0x5e, 0x33, 0x4d, 0xaf, 0x82, 0x7f, 0x2f, 0xa1, 0x29, 0x37, 0xb8, 0x75}

// guidTimeFormat is .NET's round-trip format ("o") of a UTC DateTime: seven
// fractional digits, always written, then Z.
const guidTimeFormat = "2006-01-02T15:04:05.0000000Z"

// NewGUID returns a deterministic, replay-safe UUID, the same one .NET
// Durable Functions (durabletask-dotnet) produces: an RFC 4122 version-5
// UUID in guidNamespace over the UTF-8 name
// "{instanceId}_{CurrentTime in round-trip format}_{counter}", where the
// counter counts the calls of this execution from 0.
func (c *Context) NewGUID() string {
	name := c.instanceID + "_" + c.currentTime.UTC().Format(guidTimeFormat) + "_" + strconv.Itoa(c.guidCounter)
	c.guidCounter++
	return uuidV5(guidNamespace, name)
}

func uuidV5(ns [16]byte, name string) string {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	sum := h.Sum(nil)
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = (u[6] & 0x0f) | 0x50
	u[8] = (u[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Logger returns a logger for orchestrator code that stays silent while
// the orchestrator replays, so each line is logged once.
func (c *Context) Logger() *slog.Logger {
	if c.logger == nil {
		base := c.ex.logger
		if base == nil {
			base = slog.Default()
		}
		c.logger = slog.New(&replaySafeHandler{inner: base.Handler(), ctx: c}).
			With("instanceId", c.instanceID, "orchestrator", c.name)
	}
	return c.logger
}

// replaySafeHandler drops records while the orchestrator replays.
type replaySafeHandler struct {
	inner slog.Handler
	ctx   *Context
}

func (h *replaySafeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.ctx.replaying && h.inner.Enabled(ctx, l)
}

func (h *replaySafeHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.ctx.replaying {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h *replaySafeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &replaySafeHandler{inner: h.inner.WithAttrs(attrs), ctx: h.ctx}
}

func (h *replaySafeHandler) WithGroup(name string) slog.Handler {
	return &replaySafeHandler{inner: h.inner.WithGroup(name), ctx: h.ctx}
}

// ContinueAsNewError is returned (via ContinueAsNew) by an orchestrator to
// restart itself with a new input and a fresh history.
type ContinueAsNewError struct {
	Input string // JSON
	// KeepUnprocessedEvents carries external events that arrived but were
	// not consumed over to the new execution.
	KeepUnprocessedEvents bool
	// NewVersion is the orchestration version of the new execution when
	// HasNewVersion is set (WithNewVersion); otherwise the new execution
	// keeps the current version.
	NewVersion    string
	HasNewVersion bool
}

// Error implements error.
func (e *ContinueAsNewError) Error() string { return "orchestration continues as new" }

// ContinueAsNewOption tunes ContinueAsNew.
type ContinueAsNewOption func(*ContinueAsNewError)

// KeepUnprocessedEvents carries events that arrived but were not awaited
// over to the new execution.
func KeepUnprocessedEvents() ContinueAsNewOption {
	return func(e *ContinueAsNewError) { e.KeepUnprocessedEvents = true }
}

// WithNewVersion starts the new execution at orchestration version v
// instead of the current one: the way an eternal orchestration moves to
// newer code (Durable Task's ContinueAsNewOptions.NewVersion). The next
// execution's ExecutionStarted.Version, its Instances row and ctx.Version()
// say v; "" is a version too (the oldest). An engine whose version match
// refuses v treats the new execution like any instance of another version
// (see the README's "Orchestration versioning"): under Fail it fails, under
// Reject this execution still ends as ContinuedAsNew and the new one waits,
// unrun, for a worker whose version matches.
func WithNewVersion(v string) ContinueAsNewOption {
	return func(e *ContinueAsNewError) { e.NewVersion, e.HasNewVersion = v, true }
}

// ContinueAsNew returns the error an orchestrator returns to restart as a
// new execution with input (eternal orchestrations):
//
//	return nil, ctx.ContinueAsNew(next)
//	return nil, ctx.ContinueAsNew(next, durable.WithNewVersion("2")) // and upgrade
//
// Work scheduled but not awaited before it is abandoned, except messages
// sent: entity signals go out, and so do the releases of a critical
// section still held (a CallEntity not awaited is sent too, but its
// response, arriving at the new execution, is dropped). The new execution
// keeps the instance's version unless WithNewVersion names another.
func (c *Context) ContinueAsNew(input any, opts ...ContinueAsNewOption) error {
	in, err := encodeJSON(input)
	if err != nil {
		return err
	}
	e := &ContinueAsNewError{Input: in}
	for _, o := range opts {
		o(e)
	}
	return e
}

// ActivityInfo describes the activity call an activity function is serving.
type ActivityInfo struct {
	Name        string
	InstanceID  string // the orchestration that called it
	ExecutionID string
	TaskID      int32
	// Deadline is when the call's timeout (WithTimeout) expires; zero
	// without one. The activity's context ends then too.
	Deadline time.Time
}

// ActivityInfoFrom returns the activity call details from an activity's context.
func ActivityInfoFrom(ctx context.Context) (ActivityInfo, bool) {
	// The engine puts them there in replay's struct of the same fields.
	info, ok := replay.ActivityInfoFrom(ctx)
	return ActivityInfo(info), ok
}
