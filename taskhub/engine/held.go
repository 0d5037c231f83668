package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// held is a queue message this process is responsible for: received from a
// queue, or sent by this process and handed over in memory. Its visibility
// is renewed while it is held, and it is deleted once its effect is durable.
type held struct {
	mu        sync.Mutex
	receipt   backend.Receipt
	partition int  // control-queue partition, or workItems
	done      bool // deleted, released or lost
}

// workItems is held.partition for work-item queue messages.
const workItems = -1

// heldSet renews the visibility of held messages before they reappear.
type heldSet struct {
	e     *Engine
	mu    sync.Mutex
	items map[*held]struct{}
}

func newHeldSet(e *Engine) *heldSet { return &heldSet{e: e, items: map[*held]struct{}{}} }

// hold starts tracking a message of a control partition (or workItems).
func (s *heldSet) hold(r backend.Receipt, partition int) *held {
	h := &held{receipt: r, partition: partition}
	s.mu.Lock()
	s.items[h] = struct{}{}
	s.mu.Unlock()
	return h
}

func (s *heldSet) forget(h *held) {
	s.mu.Lock()
	delete(s.items, h)
	s.mu.Unlock()
}

// finish stops tracking h and runs f with its receipt, once: the first of
// remove and release wins.
func (s *heldSet) finish(h *held, f func(r backend.Receipt)) {
	if h == nil {
		return
	}
	s.forget(h)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return
	}
	h.done = true
	f(h.receipt)
}

// remove deletes the message from its queue: its effect is durable.
func (s *heldSet) remove(ctx context.Context, h *held) { s.removeOK(ctx, h) }

// removeOK is remove, reporting whether this call deleted the message.
func (s *heldSet) removeOK(ctx context.Context, h *held) bool {
	ok := false
	s.finish(h, func(r backend.Receipt) {
		if err := s.e.be.DeleteMessage(ctx, r); err != nil {
			// The message will reappear and be recognised as a duplicate.
			s.e.log.Warn("could not delete a processed message; it will be redelivered and ignored",
				"queue", r.Queue, "message", r.MessageID, "err", err)
			return
		}
		ok = true
	})
	return ok
}

// removeHeld deletes the queue copy of a held message that is done with, in
// the background (nil: nothing to delete).
func (e *Engine) removeHeld(h *held) {
	if h != nil {
		e.background(func(ctx context.Context) { e.held.remove(ctx, h) })
	}
}

// release makes the message visible again after delay (0 = at once), for
// another attempt by whichever worker gets it.
func (s *heldSet) release(ctx context.Context, h *held, delay time.Duration) {
	s.finish(h, func(r backend.Receipt) {
		s.e.noteLeftWork() // given back while stopping: for the next owner
		if _, err := s.e.be.SetVisibility(ctx, r, delay); err != nil {
			if !errors.Is(err, backend.ErrNotFound) {
				s.e.log.Warn("could not release a message; it reappears when its visibility expires",
					"queue", r.Queue, "message", r.MessageID, "err", err)
			}
			return
		}
		if delay == 0 {
			// Visible again at once: our own poller should not wait out its backoff.
			if h.partition == workItems {
				s.e.acts.poke()
			} else {
				s.e.wakePartition(h.partition)
			}
		}
	})
}

// releasePartition makes every held message of control partition p visible
// again: this worker no longer owns p.
func (s *heldSet) releasePartition(ctx context.Context, p int) {
	s.mu.Lock()
	var list []*held
	for h := range s.items {
		if h.partition == p {
			list = append(list, h)
		}
	}
	s.mu.Unlock()
	for _, h := range list {
		s.release(ctx, h, 0)
	}
}

// renewLoop extends the visibility of held messages that would otherwise
// reappear within the next half visibility period.
func (s *heldSet) renewLoop() {
	defer s.e.wg.Done()
	vis := s.e.opts.MessageVisibility
	tick := vis / 4
	if tick > 5*time.Second {
		tick = 5 * time.Second
	}
	for sleepCtx(s.e.ctx, tick) {
		limit := time.Now().Add(vis / 2)
		s.mu.Lock()
		var due []*held
		for h := range s.items {
			h.mu.Lock()
			if !h.done && h.receipt.NextVisible.Before(limit) {
				due = append(due, h)
			}
			h.mu.Unlock()
		}
		s.mu.Unlock()
		for _, h := range due {
			if h.partition != workItems && !s.e.ownsNow(h.partition) {
				// Not ours any more: never keep another owner's message hidden.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				s.release(ctx, h, 0)
				cancel()
				continue
			}
			s.renew(h, vis)
		}
	}
}

func (s *heldSet) renew(h *held, vis time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.e.be.SetVisibility(ctx, h.receipt, vis)
	if err != nil {
		if errors.Is(err, backend.ErrNotFound) || errors.Is(err, backend.ErrConflict) {
			// Someone else took it after it became visible; at-least-once
			// processing makes that a duplicate, never a loss.
			h.done = true
			s.forget(h)
			s.e.log.Warn("lost a held message before it was processed", "queue", h.receipt.Queue, "message", h.receipt.MessageID)
			return
		}
		s.e.log.Warn("could not renew a held message", "queue", h.receipt.Queue, "message", h.receipt.MessageID, "err", err)
		return
	}
	h.receipt = r
}
