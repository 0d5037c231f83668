package engine

import (
	"sort"
	"strconv"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// The entity scheduler: what an entity does with the messages of a batch
// before any operation runs (Durable Task's DetermineWork in
// TaskEntityDispatcher.cs, with our own deduplication and ordering). It is
// pure: it changes only the scheduler state it is given.
//
// Requests are taken in once. An orchestration numbers its requests (Seq,
// PredSeq, the same numbers when a crash makes it send them again): the
// entity keeps, per sending execution, the last number taken in, drops a
// number it has seen and puts back a request whose predecessor has not
// arrived yet, so that an orchestration's requests run in the order sent.
// A request whose predecessor does not come within the reorder wait (its
// sender's lost episode, run again, went another way) is taken in ahead
// of it, never dropped.
// An entity numbers the signals it sends to entities too (one counter
// over all targets, committed with its batch): the receiver orders them
// the same way, under one record per sending entity, but deduplicates
// them by ID, because a batch run again after a lost commit sends the
// same IDs yet may number them differently (it may take in its messages
// in another order). Other requests (from clients, scheduled signals,
// forwarded lock requests, and entities' signals from older versions or
// Durable Task) are remembered by ID in Applied for as long as a copy may
// come again.
//
// Taken-in requests queue in the state; while an orchestration holds the
// entity's lock only its own requests leave the queue, and a lock request
// ends the batch's operations (the lock is granted after them).

// fixOrphanedLockID is the ID of the release that storage cleaning sends
// for a lock whose holder no longer runs (ClientEntityHelpers.cs): it
// releases whatever lock that holder has.
const fixOrphanedLockID = "fix-orphaned-lock"

// intake is the scheduler's verdict on one message.
type intake int

const (
	intakeTaken      intake = iota // queued, or a release or continue applied: delete its copy after the commit
	intakeDup                      // a copy of a request the committed state has taken in: delete it
	intakeDupPending               // a copy of a request this batch takes in: delete it after the commit
	intakeWait                     // its predecessor has not been taken in yet: put it back
)

// String names the verdict, for logs.
func (v intake) String() string {
	switch v {
	case intakeTaken:
		return "taken"
	case intakeDup:
		return "copy"
	case intakeDupPending:
		return "copy of a request of this batch"
	case intakeWait:
		return "wait"
	}
	return "intake(" + strconv.Itoa(int(v)) + ")"
}

// entityStep is one batch's work on an entity's scheduler state.
type entityStep struct {
	state *history.EntitySchedulerState
	// now is the batch's time; loaded is when this worker loaded the
	// entity (records are kept for the dedup horizon from the later of the
	// two, so that a worker taking over does not forget at once).
	now, loaded time.Time
	// reorderWait is how long after it was sent a request waits for its
	// predecessor before it is taken in ahead of it.
	reorderWait time.Duration
	// forgotten reports an unnumbered request taken in earlier whose ID
	// the scheduler state no longer holds but the process remembers (nil:
	// none).
	forgotten func(id string) bool
	// holder are requests of the lock holder taken in by this batch: they
	// go ahead of the queue.
	holder []history.EntityRequest
	// taken are the IDs of the requests this batch took in. A second copy
	// of one may be the same queue message dequeued twice: deleting it
	// before the batch is committed would lose the request if the commit
	// fails.
	taken map[string]bool
}

// numbered reports whether r is deduplicated and ordered by its sender's
// numbers rather than by its ID.
func numbered(r *history.EntityRequest) bool {
	return r.Seq > 0 && r.ParentInstanceID != "" && r.Position == 0 && r.Due.IsZero()
}

// orderBatch sorts the numbered requests of each sender execution by
// number, in the positions they occupy, leaving everything else where it
// is. reqs[i] is the decoded request of message i (nil: not a request).
func orderBatch[T any](items []T, reqs []*history.EntityRequest) {
	bySender := map[string][]int{}
	var senders []string
	for i, r := range reqs {
		if r == nil || !numbered(r) {
			continue
		}
		k := history.RequestSenderKey(r)
		if bySender[k] == nil {
			senders = append(senders, k)
		}
		bySender[k] = append(bySender[k], i)
	}
	for _, k := range senders {
		pos := bySender[k]
		idx := append([]int(nil), pos...)
		sort.SliceStable(idx, func(a, b int) bool { return reqs[idx[a]].Seq < reqs[idx[b]].Seq })
		itemsCopy := make([]T, len(idx))
		reqsCopy := make([]*history.EntityRequest, len(idx))
		for j, i := range idx {
			itemsCopy[j], reqsCopy[j] = items[i], reqs[i]
		}
		for j, p := range pos {
			items[p], reqs[p] = itemsCopy[j], reqsCopy[j]
		}
	}
}

// takeRequest decides on request r (due now) and, when it is taken in,
// queues it.
func (s *entityStep) takeRequest(r history.EntityRequest) intake {
	v := s.take(r)
	switch {
	case v == intakeDup && s.taken[r.ID]:
		return intakeDupPending
	case v == intakeTaken:
		if s.taken == nil {
			s.taken = map[string]bool{}
		}
		s.taken[r.ID] = true
	}
	return v
}

func (s *entityStep) take(r history.EntityRequest) intake {
	st := s.state
	switch {
	case numbered(&r) && history.IsEntityInstanceID(r.ParentInstanceID):
		// An entity's numbers order its signals, its IDs deduplicate them:
		// a batch run again after a lost commit sends the same IDs but,
		// having taken in its messages in another order or another mix,
		// may number them differently.
		if s.seenID(r.ID) {
			return intakeDup
		}
		if v := s.order(r, true); v != intakeTaken {
			return v
		}
		s.rememberID(r.ID)
	case numbered(&r):
		if v := s.order(r, false); v != intakeTaken {
			return v
		}
	default:
		if s.seenID(r.ID) {
			return intakeDup
		}
		s.rememberID(r.ID)
	}
	if st.LockedBy != "" && r.ParentInstanceID == st.LockedBy {
		s.holder = append(s.holder, r)
	} else {
		st.Queue = append(st.Queue, r)
	}
	return intakeTaken
}

// seenID reports whether the entity took in a request of this ID that it
// still remembers.
func (s *entityStep) seenID(id string) bool {
	_, seen := s.state.Applied[id]
	return seen || s.forgotten != nil && s.forgotten(id)
}

// rememberID records a request taken in by its ID.
func (s *entityStep) rememberID(id string) {
	if s.state.Applied == nil {
		s.state.Applied = map[string]time.Time{}
	}
	s.state.Applied[id] = s.now
}

// order decides on numbered request r by its sender's record, and updates
// the record when r is taken in. With byID (an entity's signal, whose ID
// was checked already), a number the record has seen is a request that a
// batch run again numbered differently: it is taken in, out of order.
func (s *entityStep) order(r history.EntityRequest, byID bool) intake {
	st := s.state
	k := history.RequestSenderKey(&r)
	rec, known := st.Senders[k]
	_, ahead := rec.Ahead[r.Seq]
	_, predAhead := rec.Ahead[r.PredSeq]
	inOrder := r.PredSeq == 0 || known && (r.PredSeq <= rec.Last || predAhead) ||
		// Without a record, a predecessor sent long ago was taken
		// in before the record was forgotten (a record outlives
		// its sender's silence by the horizon).
		!known && (r.Predecessor.IsZero() || s.now.Sub(r.Predecessor) >= entityDedupHorizon)
	switch {
	case known && (r.Seq <= rec.Last || ahead) && !byID:
		return intakeDup
	case known && (r.Seq <= rec.Last || ahead):
		rec.Seen = s.now
		st.Senders[k] = rec
		return intakeTaken
	case !inOrder && s.now.Sub(r.Timestamp) < s.reorderWait:
		return intakeWait
	}
	rec.Seen = s.now
	if inOrder && (r.PredSeq <= rec.Last || !known) && !predAhead {
		rec.Last = max(rec.Last, r.Seq)
		// Requests taken in ahead of this one now follow on.
		for advanced := true; advanced; {
			advanced = false
			for seq, pred := range rec.Ahead {
				if pred <= rec.Last {
					rec.Last = max(rec.Last, seq)
					delete(rec.Ahead, seq)
					advanced = true
				}
			}
		}
	} else {
		// Its predecessor did not come within the reorder wait (a
		// crash lost the episode that sent it, and the episode run
		// again went another way), or follows one that did not: take
		// it ahead, and keep its number so that a copy is dropped.
		if rec.Ahead == nil {
			rec.Ahead = map[int64]int64{}
		}
		rec.Ahead[r.Seq] = r.PredSeq
	}
	if len(rec.Ahead) == 0 {
		rec.Ahead = nil
	}
	if st.Senders == nil {
		st.Senders = map[string]history.SenderRecord{}
	}
	st.Senders[k] = rec
	return intakeTaken
}

// numberSignal numbers a signal this entity sends now to the entity
// target (its instance ID): the next number of the entity's one counter,
// and the number and time of the last signal to target as predecessor
// (none if target's entry was forgotten).
func (s *entityStep) numberSignal(target string) (seq, pred int64, predAt time.Time) {
	sent := &s.state.Sent
	last := sent.To[target]
	sent.Last++
	if sent.To == nil {
		sent.To = map[string]history.SentRecord{}
	}
	sent.To[target] = history.SentRecord{Seq: sent.Last, At: s.now}
	return sent.Last, last.Seq, last.At
}

// takeRelease applies a lock release: it frees the lock if the release
// comes from the holder for the lock it holds (or is storage cleaning's).
// It reports whether the lock was freed.
func (s *entityStep) takeRelease(r history.EntityRelease) bool {
	st := s.state
	if st.LockedBy == "" || r.ParentInstanceID != st.LockedBy ||
		(st.LockID != "" && r.ID != st.LockID && r.ID != fixOrphanedLockID) {
		return false // a late copy, or a release of a lock no longer held
	}
	st.LockedBy, st.LockID = "", ""
	return true
}

// work returns what the batch runs: the operations that may leave the
// queue now, in order, and the lock request that ends them, if any.
func (s *entityStep) work() (ops []history.EntityRequest, lock *history.EntityRequest) {
	st := s.state
	if len(s.holder) > 0 {
		st.Queue = append(s.holder, st.Queue...)
		s.holder = nil
	}
	if st.Suspended {
		return nil, nil
	}
	for len(st.Queue) > 0 && (st.LockedBy == "" || st.Queue[0].ParentInstanceID == st.LockedBy) {
		r := st.Queue[0]
		st.Queue = st.Queue[1:]
		if r.IsLockRequest() {
			lock = &r
			break
		}
		ops = append(ops, r)
	}
	if len(st.Queue) == 0 {
		st.Queue = nil
	}
	return ops, lock
}

// grant gives the lock to the lock request's orchestration and returns
// where the request goes next: the next entity of its lock set (forwarded
// with its position advanced, unnumbered), or, for the last entity, done.
func (s *entityStep) grant(r history.EntityRequest) (forward *history.EntityRequest, done bool) {
	s.state.LockedBy, s.state.LockID = r.ParentInstanceID, r.ID
	next := r
	next.Position++
	if next.Position >= len(next.LockSet) {
		return nil, true
	}
	next.Seq, next.PredSeq = 0, 0
	next.Timestamp, next.Predecessor = s.now, time.Time{}
	return &next, false
}

// sentKeep is how long an entity keeps the last number it sent to a
// target: past the receiver's reorder wait, and past the horizon for
// which the receiver keeps its record of this sender.
func (s *entityStep) sentKeep() time.Duration { return entityDedupHorizon + s.reorderWait }

// prune forgets the records no longer needed: applied client requests
// whose copies are confirmed deleted (confirmed), and any request ID or
// sender record older than the dedup horizon.
func (s *entityStep) prune(confirmed map[string]bool) {
	st := s.state
	for id, at := range st.Applied {
		if confirmed[id] || s.now.Sub(maxTime(at, s.loaded)) >= entityDedupHorizon {
			delete(st.Applied, id)
		}
	}
	for k, rec := range st.Senders {
		if s.now.Sub(maxTime(rec.Seen, s.loaded)) >= entityDedupHorizon {
			delete(st.Senders, k)
		}
	}
	// A target not signalled for sentKeep starts a new chain (PredSeq 0)
	// with its next signal: by then its receiver has stopped waiting for
	// any predecessor, and the one counter keeps the new number above the
	// old ones, so that a receiver still holding its record does not take
	// the new signal for a copy.
	for target, rec := range st.Sent.To {
		if s.now.Sub(rec.At) >= s.sentKeep() {
			delete(st.Sent.To, target)
		}
	}
	if len(st.Sent.To) == 0 {
		st.Sent.To = nil
	}
	if len(st.Applied) == 0 {
		st.Applied = nil
	}
	if len(st.Senders) == 0 {
		st.Senders = nil
	}
}
