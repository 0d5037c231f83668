package durable

import (
	"fmt"
	"sort"

	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// The engine reaches the replay core through taskhub/internal/replay, so
// that none of it is part of this package's API.
func init() {
	replay.Install(replay.Hooks{
		Orchestrator: func(reg any, name string) (replay.Orchestrator, bool) {
			r := registryOf(reg)
			fn, ok := r.orchestrator(name)
			if !ok {
				return nil, false
			}
			poll := r.httpPollInterval()
			return func(instanceID string) replay.Executor {
				ex := newExecutor(fn, instanceID)
				ex.httpPollInterval = poll
				return ex
			}, true
		},
		Activity: func(reg any, name string) (replay.ActivityFunc, bool) {
			return registryOf(reg).activity(name)
		},
		Entity: func(reg any, name string) (replay.EntityFunc, bool) {
			return registryOf(reg).entity(name)
		},
		Failing: func(err error) replay.Orchestrator {
			return orchestratorFunc(func(*Context) (string, error) { return "", err }).executors()
		},
		FailureFromError: func(err error) *history.FailureDetails { return failureFromError(err) },
		EventsAwaited: func(ex replay.Executor) []string {
			if e, ok := ex.(*executor); ok {
				return e.eventsAwaited()
			}
			return nil
		},
	})
}

// eventsAwaited returns the names of the external events the code waits
// for, sorted.
func (e *executor) eventsAwaited() []string {
	var names []string
	for _, q := range e.waiters {
		for _, t := range q {
			names = append(names, t.name)
		}
	}
	sort.Strings(names)
	return names
}

// registryOf returns reg as the *Registry it must be.
func registryOf(reg any) *Registry {
	r, ok := reg.(*Registry)
	if !ok || r == nil {
		panic(fmt.Sprintf("durable: the replay core needs a non-nil *durable.Registry, got %T", reg))
	}
	return r
}

// executors returns fn as the engine holds it: a maker of executors.
func (fn orchestratorFunc) executors() replay.Orchestrator {
	return func(instanceID string) replay.Executor { return newExecutor(fn, instanceID) }
}
