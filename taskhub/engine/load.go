package engine

import (
	"context"
	"fmt"

	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// load reads an instance's history and replays it into a fresh executor.
func (e *Engine) load(ctx context.Context, inst *instance) error {
	h, err := e.be.LoadHistory(ctx, inst.id)
	if err != nil {
		return err
	}
	inst.forget()
	inst.loaded = true
	inst.etag, inst.historyLen, inst.executionID = h.ETag, len(h.Events), h.ExecutionID
	if len(h.Events) == 0 {
		return nil
	}
	inst.lastEvent = h.Events[len(h.Events)-1].Timestamp
	scheduled := map[int32]history.Event{}
	for i := range h.Events {
		ev := h.Events[i]
		inst.record(ev)
		switch ev.Type {
		case history.ExecutionStarted:
			inst.start = &ev
		case history.TaskScheduled:
			scheduled[ev.EventID] = ev
		case history.ExecutionCompleted, history.ContinueAsNew:
			inst.terminal = true
			inst.completion = &ev
		}
	}
	traceLoaded(inst, h.Events)
	if _, _, entity := e.entityOf(inst.id); entity || inst.terminal || inst.start == nil {
		return nil // an entity's state is its ExecutionStarted input: nothing to replay
	}
	if len(h.Events) == 1 {
		// An unrun execution (left so by a ContinueAsNew to a version its
		// worker rejects): its first episode runs with the next batch, on
		// a worker whose version matches.
		inst.unrun, inst.outstanding = true, map[int32]history.Event{}
		return nil
	}
	if e.checkVersion(inst.start.Version) != nil && e.opts.VersionFailure == FailureReject {
		// Never replayed here: processBatch gives the messages back.
		return nil
	}
	inst.ex = e.newExecutor(inst, inst.start.Name)
	if err := inst.ex.Replay(h.Events); err != nil {
		// The executor now holds a failed completion that the next episode
		// records: the instance fails instead of getting stuck.
		e.log.Error("replay disagrees with history; the instance will fail", "instance", inst.id, "err", err)
	}
	inst.outstanding = map[int32]history.Event{}
	if _, failing := inst.ex.(*versionFailedExecutor); failing {
		return nil // it fails at its next episode: nothing to run again
	}
	for id, ev := range scheduled {
		if inst.ex.TaskState(id) == replay.TaskAwaiting {
			inst.outstanding[id] = ev
		}
	}
	return nil
}

// orchestrator returns the code for name, or code that fails the instance
// with a clear reason when name is not registered.
func (e *Engine) orchestrator(name string) replay.Orchestrator {
	if fn, ok := replay.LookupOrchestrator(e.opts.Registry, name); ok {
		return fn
	}
	return replay.Failing(&NotRegisteredError{Kind: "orchestrator", Name: name})
}

// newExecutor returns an executor for the instance's orchestrator; for an
// execution (inst.start) whose version the engine refuses, one that runs
// no code and fails it (see versionFailedExecutor).
func (e *Engine) newExecutor(inst *instance, name string) replay.Executor {
	if inst.start != nil {
		if mm := e.checkVersion(inst.start.Version); mm != nil {
			e.log.Warn("failing an instance of another orchestration version", "instance", inst.id,
				"instanceVersion", mm.InstanceVersion, "workerVersion", mm.WorkerVersion, "versionMatch", mm.Match.String())
			x := newVersionFailedExecutor(mm)
			x.SetLogger(e.opts.Logger)
			return x
		}
	}
	ex := replay.NewExecutor(e.orchestrator(name), inst.id)
	ex.SetLogger(e.opts.Logger)
	return ex
}

// NotRegisteredError reports a function name that this app does not know.
type NotRegisteredError struct {
	Kind string
	Name string
}

// Error implements error.
func (e *NotRegisteredError) Error() string {
	return fmt.Sprintf("%s %q is not registered in this app", e.Kind, e.Name)
}

// ErrorType implements the durable ErrorType convention.
func (e *NotRegisteredError) ErrorType() string { return "NotRegisteredError" }

// waitInstancesIdle waits until no instance is being processed.
func (e *Engine) waitInstancesIdle() { e.runs.Wait() }

// closeInstances unwinds every cached executor and releases held anchors,
// so that the next owner recovers their activities without waiting for
// the anchors' visibility to expire.
func (e *Engine) closeInstances(ctx context.Context) {
	for _, h := range e.unwindIdle(func(*instance) bool { return true }) {
		e.held.release(ctx, h, 0)
	}
}

// unwindIdle removes the cached instances that match and are not being
// processed, and returns their recovery anchors for the caller to release.
func (e *Engine) unwindIdle(match func(*instance) bool) []*held {
	e.mu.Lock()
	defer e.mu.Unlock()
	var anchors []*held
	for id, inst := range e.instances {
		if inst.active || !match(inst) {
			continue
		}
		if inst.anchor != nil {
			anchors = append(anchors, inst.anchor)
			inst.anchor = nil
		}
		inst.closeExecutor()
		e.idle.remove(inst)
		delete(e.instances, id)
	}
	return anchors
}
