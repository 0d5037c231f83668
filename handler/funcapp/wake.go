package funcapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/wake"
)

// WakeFunction is the function folder of the wake function: a queueTrigger
// function on the task hub's wake queue (wake.QueueName). An app that has
// it (enabled) opts in to scale from zero: the task hub sends wake messages
// there, and each invocation makes the engine poll (engine.Engine.Wake).
const WakeFunction = "DurableTaskWake"

// ErrWakeFunction: the wake function's function.json does not fit the task
// hub (another trigger, another queue, another storage connection).
var ErrWakeFunction = errors.New("wake function misconfigured")

// wakeReadyWait bounds how long a wake invocation that arrives while the
// engine starts waits for it.
const wakeReadyWait = 30 * time.Second

// wakeFunction returns the app's wake function when it has one that the
// host would invoke (not disabled in function.json nor by the app setting
// AzureWebJobs.<name>.Disabled). Under the host (hosted) it first checks
// that the function listens on hub's wake queue in the app's storage;
// lookup reads app settings, for the %SETTING% tokens of queueName as the
// host resolves them.
func wakeFunction(cfg *handler.AppConfig, hub string, lookup func(string) string, hosted bool) (f handler.FunctionInfo, enabled bool, err error) {
	f, ok := cfg.Function(WakeFunction)
	if !ok {
		return f, false, nil
	}
	if f.Disabled || isTrue(lookup("AzureWebJobs."+f.Name+".Disabled")) {
		return f, false, nil // the host does not invoke it
	}
	if !hosted {
		return f, true, nil
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: function %s (%s): %s", ErrWakeFunction, f.Name, f.Dir, fmt.Sprintf(format, args...))
	}
	if !strings.EqualFold(f.TriggerType, "queueTrigger") {
		return f, false, fail("its trigger is %q; it must be a queueTrigger on queue %q", f.TriggerType, wake.QueueName(hub))
	}
	var trigger handler.Binding
	for _, b := range f.Bindings {
		if b.Name == f.TriggerName {
			trigger = b
		}
	}
	prop := func(name string) (string, error) {
		raw, ok := trigger.Properties[name]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fail("queueTrigger property %q is %s, not a string", name, raw)
		}
		return s, nil
	}
	queueName, err := prop("queueName")
	if err != nil {
		return f, false, err
	}
	resolved, err := handler.ResolveSettings(queueName, lookup)
	if err != nil {
		return f, false, fail("queueName %q: %v", queueName, err)
	}
	// The host lower-cases queue names before it uses them.
	if want := wake.QueueName(hub); strings.ToLower(resolved) != want {
		shown := fmt.Sprintf("%q", queueName)
		if resolved != queueName {
			shown += fmt.Sprintf(" (resolved to %q)", resolved)
		}
		return f, false, fail("its queueTrigger names queue %s, but the wake queue of task hub %s is %q; set \"queueName\": %q",
			shown, hub, want, want)
	}
	conn, err := prop("connection")
	if err != nil {
		return f, false, err
	}
	// The host reads "Storage" as AzureWebJobsStorage, and "" means it.
	switch strings.ToLower(conn) {
	case "", "storage", strings.ToLower(SettingStorage):
	default:
		return f, false, fail("its queueTrigger connection is %q, but the task hub is in %s; set \"connection\": %q",
			conn, SettingStorage, SettingStorage)
	}
	return f, true, nil
}

func isTrue(v string) bool { return strings.EqualFold(v, "true") || v == "1" }

// WakeFunc is the Go code of the wake function: it makes eng poll now
// (engine.Engine.Wake) and answers success without outputs, so that the
// host deletes the message. An invocation that arrives while the engine is
// starting waits for it (at most 30 s); when the engine cannot run, the
// invocation fails and the host delivers the message again later.
func WakeFunc(eng *engine.Engine) handler.InvocationFunc {
	return func(ctx context.Context, inv *handler.Invocation) (*handler.InvocationResult, error) {
		if err := eng.AwaitReady(ctx, wakeReadyWait); err != nil {
			return nil, fmt.Errorf("wake: the task hub engine is not running: %w", err)
		}
		eng.Wake()
		return &handler.InvocationResult{}, nil
	}
}

// lookupSetting is Config.Lookup, or the environment.
func (cfg *Config) lookupSetting(name string) string {
	if cfg.Lookup != nil {
		return cfg.Lookup(name)
	}
	return os.Getenv(name)
}
