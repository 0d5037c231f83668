package engine

import (
	"context"
	"errors"
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

// OwnsPartitionOf reports whether this worker processes instanceID's partition.
func (e *Engine) OwnsPartitionOf(instanceID string) bool {
	p := e.be.PartitionOf(instanceID)
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.owned[p]
	return ok && !e.stopped
}

// partitionLoop renews owned leases and claims free or expired ones.
func (e *Engine) partitionLoop() {
	defer e.wg.Done()
	interval := e.opts.LeaseInterval / 3
	for sleepCtx(e.ctx, interval) {
		ctx, cancel := context.WithTimeout(e.ctx, interval)
		if err := e.balancePartitions(ctx); err != nil && e.ctx.Err() == nil {
			e.log.Warn("partition ownership pass failed", "err", err)
		}
		cancel()
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
	target := len(leases) / (len(owners) + 1)
	if target == 0 {
		target = 1
	}
	var errs []error
	mine := 0
	for _, l := range leases {
		switch {
		case l.CurrentOwner == me && l.NextOwner != "" && l.NextOwner != me:
			// Another worker asked for this partition: stop and release it.
			e.dropPartition(l.Partition)
			l.CurrentOwner, l.IsDraining = "", false
			if _, err := e.be.WritePartition(ctx, l); err != nil && !errors.Is(err, backend.ErrConflict) {
				errs = append(errs, err)
			}
		case l.CurrentOwner == me:
			if !e.ownsIndex(l.Partition) {
				// We restarted with the same identity: resume it.
				e.adoptPartition(l)
			}
			if t.Add(e.opts.LeaseInterval / 2).Before(l.ExpiresAt) {
				mine++ // renewed recently enough: spare a write
				continue
			}
			l.LastRenewal, l.ExpiresAt = t, t.Add(e.opts.LeaseInterval)
			nl, err := e.be.WritePartition(ctx, l)
			if err != nil {
				e.dropPartition(l.Partition)
				if !errors.Is(err, backend.ErrConflict) {
					errs = append(errs, err)
				}
				continue
			}
			e.updateLease(nl)
			mine++
		case isClaimable(l, me, t):
			// Take no more than a fair share of free partitions while other
			// workers are active, unless the row was handed to us.
			if mine >= target && len(owners) > 0 && l.NextOwner != me {
				continue
			}
			l.CurrentOwner, l.NextOwner, l.IsDraining = me, "", false
			l.OwnedSince, l.LastRenewal, l.ExpiresAt = t, t, t.Add(e.opts.LeaseInterval)
			nl, err := e.be.WritePartition(ctx, l)
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

// isClaimable reports whether a lease row is free (or handed to me) or expired.
func isClaimable(l backend.PartitionLease, me string, t time.Time) bool {
	free := l.CurrentOwner == "" && (l.NextOwner == "" || l.NextOwner == me)
	expired := l.CurrentOwner != "" && !t.Before(l.ExpiresAt)
	return free || expired
}

func (e *Engine) ownsIndex(p int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.owned[p]
	return ok
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
	e.log.Info("released partition", "partition", ps.lease.QueueName)
}

// releasePartitions gives up every owned partition at shutdown so another
// worker can take over at once instead of waiting for expiry.
func (e *Engine) releasePartitions(ctx context.Context) {
	e.mu.Lock()
	var leases []backend.PartitionLease
	for p, ps := range e.owned {
		leases = append(leases, ps.lease)
		delete(e.owned, p)
	}
	e.mu.Unlock()
	for _, l := range leases {
		l.CurrentOwner, l.IsDraining = "", false
		l.ExpiresAt = now()
		if _, err := e.be.WritePartition(ctx, l); err != nil {
			e.log.Warn("could not release partition at shutdown; it frees itself when the lease expires", "partition", l.QueueName, "err", err)
		}
	}
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
		for _, p := range poison {
			e.count(func(s *Stats) { s.PoisonMessages++ })
			e.log.Error("parked an undecodable control message", "queue", p.Receipt.Queue, "message", p.Receipt.MessageID, "reason", p.Reason)
		}
		for _, m := range msgs {
			e.receivedControl(m)
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

// receivedControl routes a polled control message to its instance.
func (e *Engine) receivedControl(m backend.Received) {
	h := e.held.hold(m.Receipt, e.be.PartitionOf(m.Message.Target.InstanceID))
	if m.DequeueCount >= e.opts.WarnDequeueCount {
		e.log.Warn("a control message keeps coming back", "queue", m.Receipt.Queue, "message", m.Receipt.MessageID,
			"instance", m.Message.Target.InstanceID, "event", m.Message.Event.Type.String(), "dequeueCount", m.DequeueCount)
	}
	e.deliver(&inbound{msg: m.Message, ack: h, dequeueCount: m.DequeueCount, fromQueue: true})
}
