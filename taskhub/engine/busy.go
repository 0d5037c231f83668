package engine

import "time"

// Busy reports whether this worker holds work that would be hidden from
// every other worker if this process died now: queue messages it received
// or sent itself hidden and has not finished with (hand-over copies,
// recovery anchors, work items), activities admitted or running, instances
// being processed, or storage writes in the background. It reads only
// in-memory counters, so it can be called often (wake.Watchdog does).
func (e *Engine) Busy() bool {
	e.held.mu.Lock()
	held := len(e.held.items)
	e.held.mu.Unlock()
	if held > 0 || len(e.acts.slots) > 0 || e.runs.count() > 0 || e.bg.count() > 0 {
		return true
	}
	e.acts.mu.Lock()
	defer e.acts.mu.Unlock()
	return e.acts.admitted > 0
}

// LeftWork reports whether Stop left work for another worker: it gave
// back messages it held (released at once for whoever owns their
// partition next), interrupted in-flight work when the grace ran out, or
// sent activities to the shared work-item queue while draining. After a
// stop without any of that (and not Busy), nothing this worker did waits
// for a worker to be started.
func (e *Engine) LeftWork() bool { return e.leftWork.Load() }

// noteLeftWork records work left for another worker once Stop began.
func (e *Engine) noteLeftWork() {
	if e.isDraining() {
		e.leftWork.Store(true)
	}
}

// count returns how many operations are running.
func (f *inFlight) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// LeaseInterval returns how long a partition lease lasts without renewal.
func (e *Engine) LeaseInterval() time.Duration { return e.opts.LeaseInterval }
