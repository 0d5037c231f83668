package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// partitionState is a control-queue partition this worker owns.
type partitionState struct {
	index  int
	lease  backend.PartitionLease
	cancel context.CancelFunc // stops the poller
	wake   chan struct{}      // resets the poller's backoff
	done   chan struct{}      // closed when the poller has exited
}

// OwnedPartitions lists the partitions this worker currently owns.
func (e *Engine) OwnedPartitions() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int
	for p := range e.owned {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// OwnsPartitionOf reports whether this worker processes instanceID's
// partition now: it owns the partition and its lease, by this process's
// clock, has not run out (see ownsNow).
func (e *Engine) OwnsPartitionOf(instanceID string) bool {
	return e.ownsNow(e.be.PartitionOf(instanceID))
}

// OwnsPartition reports whether this worker processes control-queue
// partition p now (see OwnsPartitionOf).
func (e *Engine) OwnsPartition(p int) bool { return e.ownsNow(p) }

// Wake makes the engine look for work now: every owned partition's poller
// and the work-item poller poll at once (their idle backoff starts over),
// and a partition ownership pass runs at once, so that an idle worker
// claims free partitions and reads them without waiting for its next
// pass. It is what the wake function's invocation does; it never blocks.
// Before Start has succeeded, and after Stop, it does nothing: Start polls
// everything anyway.
func (e *Engine) Wake() {
	e.mu.Lock()
	running := e.started && !e.draining
	var parts []int
	for p := range e.owned {
		parts = append(parts, p)
	}
	e.mu.Unlock()
	if !running {
		return
	}
	for _, p := range parts {
		e.wakePartition(p)
	}
	e.acts.poke()
	select {
	case e.balanceNow <- struct{}{}:
	default:
	}
}

// PollPartition makes the poller of partition p, if this worker owns it,
// poll now (its idle backoff starts over).
func (e *Engine) PollPartition(p int) { e.wakePartition(p) }

// ownsNow reports whether partition p is owned under a lease that is still
// valid now, with a safety margin for clock skew between workers. A worker
// that stalled past its lease (GC pause, VM freeze, SIGSTOP) therefore
// stops acting for the partition the moment it runs again, before its
// ownership pass has even read the table. Every checkpoint asks this first.
func (e *Engine) ownsNow(p int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps, ok := e.owned[p]
	return ok && !e.stopped && now().Before(ps.lease.ExpiresAt.Add(-e.leaseMargin()))
}

// leaseMargin is how long before its expiry a lease stops counting as
// ours: the room left for clock skew and for a write already on its way.
func (e *Engine) leaseMargin() time.Duration { return e.opts.LeaseInterval / 10 }

// partitionLoop renews owned leases and claims free or expired ones. A
// partition whose lease ran out without renewal is dropped even when the
// table cannot be read.
func (e *Engine) partitionLoop() {
	defer e.wg.Done()
	interval := e.opts.LeaseInterval / 4
	for e.pauseBalance(interval) {
		e.dropExpired()
		if e.appLeaseLost() {
			continue // another app holds the hub: claim nothing
		}
		ctx, cancel := context.WithTimeout(e.ctx, interval)
		if err := e.balancePartitions(ctx); err != nil && e.ctx.Err() == nil {
			e.log.Warn("partition ownership pass failed", "err", err)
		}
		cancel()
		e.dropExpired()
	}
}

// pauseBalance waits for the next ownership pass: d, or a Wake. It
// reports false when the engine stops.
func (e *Engine) pauseBalance(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-e.balanceNow:
	case <-e.ctx.Done():
		return false
	}
	return true
}

// dropExpired stops processing every owned partition whose lease is no
// longer valid: another worker may hold it by now.
func (e *Engine) dropExpired() {
	e.mu.Lock()
	var lost []int
	t := now()
	for p, ps := range e.owned {
		if !t.Before(ps.lease.ExpiresAt.Add(-e.leaseMargin())) {
			lost = append(lost, p)
		}
	}
	e.mu.Unlock()
	for _, p := range lost {
		e.log.Warn("partition lease ran out before it could be renewed; no longer processing it", "partition", p)
		e.dropPartition(p)
	}
}

// balancePartitions is one pass of the table partition protocol: renew what
// we own, hand over what another worker asked for, claim free or expired
// rows, and ask for a fair share when others own more than theirs. Every
// write is fenced by the row's ETag.
func (e *Engine) balancePartitions(ctx context.Context) error {
	leases, err := e.be.ReadPartitions(ctx)
	if err != nil {
		return err
	}
	me := e.opts.WorkerID
	t := now()
	owners := map[string]int{}
	for _, l := range leases {
		if l.CurrentOwner != "" && t.Before(l.ExpiresAt) {
			owner := l.CurrentOwner
			if l.NextOwner != "" {
				owner = l.NextOwner
			}
			owners[owner]++
		}
	}
	delete(owners, me)
	// The fair share, rounded down, is what a worker asks others for; a
	// free partition is claimed by any worker below the share rounded up,
	// so that a partition left over by a dead worker never stays unowned
	// when the shares do not divide evenly (4 partitions, 3 workers).
	workers := len(owners) + 1
	target := max(len(leases)/workers, 1)
	claimUpTo := max((len(leases)+workers-1)/workers, 1)
	var errs []error
	mine := 0
	for _, l := range leases {
		switch {
		case l.CurrentOwner != me && e.ownsIndex(l.Partition):
			// Someone else holds a partition we thought ours (we stalled past
			// our lease, or our renewal answer was lost): stop at once.
			e.log.Warn("another worker holds a partition this worker had; no longer processing it",
				"partition", l.QueueName, "owner", l.CurrentOwner)
			e.dropPartition(l.Partition)
			if isClaimable(l, me, t) && (mine < claimUpTo || len(owners) == 0) {
				// It is free again: take it back through the normal claim.
				if nl, err := e.claim(ctx, l, t); err == nil {
					e.adoptPartition(nl)
					mine++
				} else if !errors.Is(err, backend.ErrConflict) {
					errs = append(errs, err)
				}
			}
		case l.CurrentOwner == me && l.NextOwner != "" && l.NextOwner != me:
			// Another worker asked for this partition: stop and release it.
			e.dropPartition(l.Partition)
			l.CurrentOwner, l.IsDraining = "", false
			if _, err := e.be.WritePartition(ctx, l); err != nil && !errors.Is(err, backend.ErrConflict) {
				errs = append(errs, err)
			}
		case l.CurrentOwner == me:
			if held, ok := e.heldLease(l.Partition); ok && !held.OwnedSince.Equal(l.OwnedSince) {
				// The row was claimed anew under our name since we adopted
				// it (a restart with the same identity): start afresh.
				e.dropPartition(l.Partition)
			}
			adopted := e.ownsIndex(l.Partition)
			if adopted && t.Add(e.opts.LeaseInterval/2).Before(l.ExpiresAt) {
				mine++ // renewed recently enough: spare a write
				continue
			}
			// Renew before (re)adopting: ownership is only acted on under a
			// lease this pass has just confirmed.
			l.LastRenewal, l.ExpiresAt = t, t.Add(e.opts.LeaseInterval)
			nl, err := e.be.WritePartition(ctx, l)
			if err != nil {
				e.dropPartition(l.Partition)
				if !errors.Is(err, backend.ErrConflict) {
					errs = append(errs, err)
				}
				continue
			}
			if adopted {
				e.updateLease(nl)
			} else {
				e.adoptPartition(nl) // we restarted with the same identity: resume it
			}
			mine++
		case isClaimable(l, me, t):
			// Take no more than a fair share of free partitions while other
			// workers are active, unless the row was handed to us.
			if mine >= claimUpTo && len(owners) > 0 && l.NextOwner != me {
				continue
			}
			nl, err := e.claim(ctx, l, t)
			if err != nil {
				if !errors.Is(err, backend.ErrConflict) {
					errs = append(errs, err)
				}
				continue
			}
			e.adoptPartition(nl)
			mine++
		}
	}
	// Ask for a fair share from workers that hold more than theirs.
	if mine < target {
		for _, l := range leases {
			if mine >= target {
				break
			}
			if l.CurrentOwner != "" && l.CurrentOwner != me && l.NextOwner == "" && t.Before(l.ExpiresAt) && owners[l.CurrentOwner] > target {
				l.NextOwner = me
				if _, err := e.be.WritePartition(ctx, l); err == nil {
					owners[l.CurrentOwner]--
					mine++
				}
			}
		}
	}
	return errors.Join(errs...)
}

// claim writes a lease row naming this worker as owner, fenced by its ETag.
func (e *Engine) claim(ctx context.Context, l backend.PartitionLease, t time.Time) (backend.PartitionLease, error) {
	l.CurrentOwner, l.NextOwner, l.IsDraining = e.opts.WorkerID, "", false
	l.OwnedSince, l.LastRenewal, l.ExpiresAt = t, t, t.Add(e.opts.LeaseInterval)
	return e.be.WritePartition(ctx, l)
}

// isClaimable reports whether a lease row is free (or handed to me) or expired.
// A row handed to another worker is free for all once the lease its last
// owner released has run out: the worker it was handed to claims it on its
// next pass, well within a lease, unless it died after asking for it.
func isClaimable(l backend.PartitionLease, me string, t time.Time) bool {
	free := l.CurrentOwner == "" && (l.NextOwner == "" || l.NextOwner == me || !t.Before(l.ExpiresAt))
	expired := l.CurrentOwner != "" && !t.Before(l.ExpiresAt)
	return free || expired
}

func (e *Engine) ownsIndex(p int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.owned[p]
	return ok
}

// heldLease returns the lease of an owned partition as last written.
func (e *Engine) heldLease(p int) (backend.PartitionLease, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ps := e.owned[p]; ps != nil {
		return ps.lease, true
	}
	return backend.PartitionLease{}, false
}

func (e *Engine) updateLease(l backend.PartitionLease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ps := e.owned[l.Partition]; ps != nil {
		ps.lease = l
	}
}

// adoptPartition starts processing a partition we now own.
func (e *Engine) adoptPartition(l backend.PartitionLease) {
	e.mu.Lock()
	if _, ok := e.owned[l.Partition]; ok || e.stopped {
		e.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(e.ctx)
	ps := &partitionState{index: l.Partition, lease: l, cancel: cancel, wake: make(chan struct{}, 1), done: make(chan struct{})}
	e.owned[l.Partition] = ps
	e.mu.Unlock()
	e.log.Info("acquired partition", "partition", l.QueueName)
	e.wg.Add(1)
	go e.pollControl(ctx, ps)
}

// dropPartition stops processing a partition (lost or handed over).
func (e *Engine) dropPartition(p int) {
	e.mu.Lock()
	ps := e.owned[p]
	delete(e.owned, p)
	e.mu.Unlock()
	if ps == nil {
		return
	}
	ps.cancel()
	<-ps.done
	e.forgetPartition(p)
	e.log.Info("released partition", "partition", ps.lease.QueueName)
}

// forgetPartition drops what this worker caches of a partition it no longer
// owns: idle instances are unwound and their recovery anchors released, so
// the new owner gets them at once instead of never (a held message is
// renewed for as long as it is held). Instances being processed right now
// do the same when their batch ends (runInstance), and every episode checks
// ownership before it writes.
func (e *Engine) forgetPartition(p int) {
	anchors := e.unwindIdle(func(inst *instance) bool { return inst.partition == p })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, h := range anchors {
		e.held.release(ctx, h, 0)
	}
	e.held.releasePartition(ctx, p)
}

// releasePartitions gives up every owned partition at shutdown so another
// worker can take over at once instead of waiting for expiry. It reports
// the partitions it could not release.
func (e *Engine) releasePartitions(ctx context.Context) error {
	e.mu.Lock()
	var leases []backend.PartitionLease
	for p, ps := range e.owned {
		leases = append(leases, ps.lease)
		delete(e.owned, p)
	}
	e.mu.Unlock()
	var errs []error
	for _, l := range leases {
		l.CurrentOwner, l.IsDraining = "", false
		l.ExpiresAt = now()
		_, err := e.be.WritePartition(ctx, l)
		switch {
		case errors.Is(err, backend.ErrConflict):
			// Another worker wrote the row since (it asked for the partition).
			e.log.Debug("partition row changed since our last renewal; not releasing it", "partition", l.QueueName)
		case err != nil:
			e.log.Warn("could not release partition at shutdown; it frees itself when the lease expires", "partition", l.QueueName, "err", err)
			errs = append(errs, fmt.Errorf("release partition %s: %w", l.QueueName, err))
		}
	}
	return errors.Join(errs...)
}

// wakePartition resets the backoff of a partition's poller.
func (e *Engine) wakePartition(p int) {
	e.mu.Lock()
	ps := e.owned[p]
	e.mu.Unlock()
	if ps != nil {
		select {
		case ps.wake <- struct{}{}:
		default:
		}
	}
}

// backoff is a bounded exponential polling backoff.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) reset() { b.cur = 0 }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur *= 2
		if b.cur > b.max {
			b.cur = b.max
		}
	}
	return b.cur
}

// pollControl receives messages of one owned control queue.
func (e *Engine) pollControl(ctx context.Context, ps *partitionState) {
	defer e.wg.Done()
	defer close(ps.done)
	bo := backoff{min: e.opts.MinPollInterval, max: e.opts.MaxPollInterval}
	for ctx.Err() == nil {
		msgs, poison, err := e.be.ReceiveControl(ctx, ps.index, 32, e.opts.MessageVisibility)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("control queue poll failed", "partition", ps.lease.QueueName, "err", err)
		}
		e.undecodable(poison)
		for _, m := range msgs {
			e.receivedControl(ps.index, m)
		}
		if len(msgs) > 0 || len(poison) > 0 {
			bo.reset()
			continue
		}
		if waitForWork(ctx, bo.next(), ps.wake) {
			bo.reset()
		}
	}
}

// waitForWork waits for d, a wake-up or the end of ctx; it reports whether
// it was woken.
func waitForWork(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
		return true
	case <-ctx.Done():
	}
	return false
}

// receivedControl routes a message polled from owned partition p to its
// instance. Like Durable Task, the engine processes whatever sits in a queue
// it owns, even a message whose instance ID hashes elsewhere (a client with
// another partition count put it there).
func (e *Engine) receivedControl(p int, m backend.Received) {
	e.metrics.dequeued(queueControl, &m)
	h := e.held.hold(m.Receipt, p)
	if m.DequeueCount >= e.opts.WarnDequeueCount {
		e.log.Warn("a control message keeps coming back", "queue", m.Receipt.Queue, "message", m.Receipt.MessageID,
			"instance", m.Message.Target.InstanceID, "event", m.Message.Event.Type.String(), "dequeueCount", m.DequeueCount)
	}
	e.deliver(&inbound{msg: m.Message, ack: h, dequeueCount: m.DequeueCount, fromQueue: true, body: m.Body, insertedAt: m.InsertedAt})
}
