package engine

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

func orchRequest(parent, exec string, seq, pred int64, op string) history.EntityRequest {
	return history.EntityRequest{ID: parent + "-" + op, Operation: op, ParentInstanceID: parent, ParentExecutionID: exec,
		Seq: seq, PredSeq: pred}
}

func TestEntityStepNumberedRequests(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	recent := t0.Add(-time.Second)
	cases := []struct {
		name    string
		senders map[string]history.SenderRecord
		req     history.EntityRequest
		want    intake
		last    int64 // the sender's record afterwards (0: none)
	}{
		{"first request", nil, orchRequest("o", "x", 1, 0, "a"), intakeTaken, 1},
		{"next in order", map[string]history.SenderRecord{"o|x": {Last: 1}}, orchRequest("o", "x", 4, 1, "b"), intakeTaken, 4},
		{"a copy", map[string]history.SenderRecord{"o|x": {Last: 4}}, orchRequest("o", "x", 4, 1, "b"), intakeDup, 4},
		{"an older copy", map[string]history.SenderRecord{"o|x": {Last: 4}}, orchRequest("o", "x", 1, 0, "a"), intakeDup, 4},
		{"ahead of its predecessor", map[string]history.SenderRecord{"o|x": {Last: 1}}, orchRequest("o", "x", 7, 4, "c"), intakeWait, 1},
		{"another execution is another sender", map[string]history.SenderRecord{"o|x": {Last: 9}}, orchRequest("o", "y", 1, 0, "a"), intakeTaken, 1},
		{"no record, predecessor sent recently: wait", nil,
			func() history.EntityRequest { r := orchRequest("o", "x", 7, 4, "c"); r.Predecessor = recent; return r }(), intakeWait, 0},
		{"no record, predecessor sent long ago: take", nil,
			func() history.EntityRequest {
				r := orchRequest("o", "x", 7, 4, "c")
				r.Predecessor = t0.Add(-2 * entityDedupHorizon)
				return r
			}(), intakeTaken, 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := history.EntitySchedulerState{Senders: c.senders}
			step := entityStep{state: &st, now: t0, reorderWait: time.Minute}
			if c.req.Timestamp.IsZero() {
				c.req.Timestamp = recent // sent a moment ago
			}
			got := step.takeRequest(c.req)
			if got != c.want {
				t.Fatalf("verdict %d, want %d", got, c.want)
			}
			rec := st.Senders[history.SenderKey(c.req.ParentInstanceID, c.req.ParentExecutionID)]
			if rec.Last != c.last {
				t.Errorf("sender record %+v, want last %d", rec, c.last)
			}
			if (got == intakeTaken) != (len(st.Queue) == 1) {
				t.Errorf("queue %+v after verdict %d", st.Queue, got)
			}
			if len(st.Applied) != 0 {
				t.Errorf("numbered requests are not remembered by ID: %v", st.Applied)
			}
		})
	}
}

// TestEntityStepReorderWait: a request whose predecessor does not come
// within the reorder wait is taken in ahead of it and remembered; the
// predecessor arriving later is still taken in (not dropped), and then
// the chain follows on.
func TestEntityStepReorderWait(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	st := history.EntitySchedulerState{Senders: map[string]history.SenderRecord{"o|x": {Last: 6}}}
	step := entityStep{state: &st, now: t0, reorderWait: time.Minute}
	r := func(seq, pred int64, sent time.Time) history.EntityRequest {
		x := orchRequest("o", "x", seq, pred, "op"+strconv.FormatInt(seq, 10))
		x.Timestamp = sent
		return x
	}
	steps := []struct {
		req  history.EntityRequest
		want intake
		last int64
		n    int // requests ahead afterwards
	}{
		{r(9, 8, t0.Add(-10*time.Second)), intakeWait, 6, 0},       // 8 (and 7) missing, sent recently
		{r(8, 7, t0.Add(-2*time.Minute)), intakeTaken, 6, 1},       // waited long enough: ahead
		{r(9, 8, t0.Add(-10*time.Second)), intakeTaken, 6, 2},      // follows one taken ahead
		{r(9, 8, t0.Add(-10*time.Second)), intakeDupPending, 6, 2}, // a copy of one this batch took ahead
		{r(7, 6, t0.Add(-3*time.Minute)), intakeTaken, 9, 0},       // the lost predecessor: the chain closes
		{r(8, 7, t0.Add(-2*time.Minute)), intakeDupPending, 9, 0},  // copies are dropped (after the commit)
		{r(11, 9, t0.Add(-time.Second)), intakeTaken, 11, 0},       // in order again
	}
	for i, c := range steps {
		if got := step.takeRequest(c.req); got != c.want {
			t.Fatalf("step %d (seq %d): verdict %d, want %d", i, c.req.Seq, got, c.want)
		}
		rec := st.Senders["o|x"]
		if rec.Last != c.last || len(rec.Ahead) != c.n {
			t.Fatalf("step %d (seq %d): record %+v, want last %d with %d ahead", i, c.req.Seq, rec, c.last, c.n)
		}
	}
	var ops []string
	for _, q := range st.Queue {
		ops = append(ops, q.Operation)
	}
	if strings.Join(ops, ",") != "op8,op9,op7,op11" {
		t.Fatalf("queue %v", ops)
	}
}

func TestEntityStepUnnumberedRequestsByID(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	st := history.EntitySchedulerState{}
	step := entityStep{state: &st, now: t0}
	client := history.EntityRequest{ID: "c1", Operation: "add", Signal: true}
	forwarded := history.EntityRequest{ID: "l1", ParentInstanceID: "o", ParentExecutionID: "x", Seq: 3,
		LockSet: []history.EntityID{history.NewEntityID("a", "1"), history.NewEntityID("b", "1")}, Position: 1}
	for _, r := range []history.EntityRequest{client, forwarded} {
		if v := step.takeRequest(r); v != intakeTaken {
			t.Fatalf("%s: verdict %d, want taken", r.ID, v)
		}
		if v := step.takeRequest(r); v != intakeDupPending {
			t.Fatalf("%s again: verdict %d, want a copy deleted after the commit", r.ID, v)
		}
	}
	// In the next batch, the committed state knows them: copies go at once.
	next := entityStep{state: &st, now: t0}
	for _, r := range []history.EntityRequest{client, forwarded} {
		if v := next.takeRequest(r); v != intakeDup {
			t.Fatalf("%s in the next batch: verdict %d, want dup", r.ID, v)
		}
	}
	if len(st.Queue) != 2 || len(st.Senders) != 0 {
		t.Fatalf("queue %d, senders %v", len(st.Queue), st.Senders)
	}
	// Pruning: a confirmed client request goes; the forwarded one stays
	// until the horizon.
	step.prune(map[string]bool{"c1": true})
	if _, ok := st.Applied["c1"]; ok {
		t.Error("a confirmed client request is still remembered")
	}
	if _, ok := st.Applied["l1"]; !ok {
		t.Error("a forwarded lock request was forgotten before the horizon")
	}
	step.now = t0.Add(entityDedupHorizon)
	step.prune(nil)
	if st.Applied != nil {
		t.Errorf("remembered past the horizon: %v", st.Applied)
	}
}

func TestEntityStepLocks(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	a, b := history.NewEntityID("acct", "a"), history.NewEntityID("acct", "b")
	st := history.EntitySchedulerState{}
	step := entityStep{state: &st, now: t0}
	lock := history.EntityRequest{ID: "L", ParentInstanceID: "o", ParentExecutionID: "x", Seq: 1, LockSet: []history.EntityID{a, b}}
	other := orchRequest("p", "y", 1, 0, "add")
	step.takeRequest(orchRequest("q", "z", 1, 0, "before"))
	step.takeRequest(lock)
	step.takeRequest(other)
	ops, got := step.work()
	if len(ops) != 1 || ops[0].Operation != "before" || got == nil || got.ID != "L" {
		t.Fatalf("work: ops %+v, lock %+v; want the operation before the lock, then the lock", ops, got)
	}
	fwd, done := step.grant(*got)
	if done || fwd == nil || fwd.Position != 1 || fwd.Seq != 0 || fwd.ID != "L" {
		t.Fatalf("grant: forward %+v, done %v; want the request forwarded to position 1, unnumbered", fwd, done)
	}
	if st.LockedBy != "o" || st.LockID != "L" {
		t.Fatalf("locked by %q (%q)", st.LockedBy, st.LockID)
	}
	// While locked, another sender's request waits; the holder's runs first.
	step = entityStep{state: &st, now: t0}
	step.takeRequest(orchRequest("o", "x", 2, 1, "call"))
	if ops, l := step.work(); len(ops) != 1 || ops[0].Operation != "call" || l != nil {
		t.Fatalf("locked: ops %+v, lock %+v; want only the holder's call", ops, l)
	}
	if len(st.Queue) != 1 || st.Queue[0].Operation != "add" {
		t.Fatalf("queue while locked: %+v", st.Queue)
	}
	// A stale release (another lock's ID) and another holder's are ignored.
	for _, r := range []history.EntityRelease{{ParentInstanceID: "o", ID: "old"}, {ParentInstanceID: "p", ID: "L"}} {
		if step.takeRelease(r) {
			t.Fatalf("release %+v freed the lock", r)
		}
	}
	if !step.takeRelease(history.EntityRelease{ParentInstanceID: "o", ID: "L"}) || st.LockedBy != "" {
		t.Fatal("the holder's release did not free the lock")
	}
	if ops, _ := step.work(); len(ops) != 1 || ops[0].Operation != "add" {
		t.Fatalf("after release: %+v", ops)
	}
	// Storage cleaning's release frees a lock whatever its ID.
	st.LockedBy, st.LockID = "gone", "L2"
	if !step.takeRelease(history.EntityRelease{ParentInstanceID: "gone", ID: fixOrphanedLockID}) {
		t.Fatal("fix-orphaned-lock did not free the lock")
	}
	// The last entity of the set answers instead of forwarding.
	last := lock
	last.Position = 1
	if fwd, done := step.grant(last); !done || fwd != nil {
		t.Fatalf("last grant: %+v %v", fwd, done)
	}
}

func TestOrderBatchSortsEachSenderInPlace(t *testing.T) {
	r := func(parent string, seq int64) *history.EntityRequest {
		x := orchRequest(parent, "x", seq, 0, "op")
		return &x
	}
	items := []string{"o3", "client", "p2", "o1", "p1", "o2"}
	reqs := []*history.EntityRequest{r("o", 3), {ID: "c"}, r("p", 2), r("o", 1), r("p", 1), r("o", 2)}
	orderBatch(items, reqs)
	want := []string{"o1", "client", "p1", "o2", "p2", "o3"}
	for i := range want {
		if items[i] != want[i] {
			t.Fatalf("order %v, want %v", items, want)
		}
	}
}

// entitySignal is a numbered signal from entity @a@1, sent by the batch
// (execution) exec.
func entitySignal(id, exec string, seq, pred int64, sent time.Time) history.EntityRequest {
	return history.EntityRequest{ID: id, Operation: "append", Signal: true, ParentInstanceID: "@a@1", ParentExecutionID: exec,
		Seq: seq, PredSeq: pred, Timestamp: sent}
}

// TestEntityStepEntitySignals: an entity's numbered signals are ordered
// under one record for all its batches (executions), and deduplicated by
// ID, also when a batch run again numbered them differently.
func TestEntityStepEntitySignals(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	recent := t0.Add(-time.Second)
	st := history.EntitySchedulerState{}
	step := func(at time.Time) *entityStep { return &entityStep{state: &st, now: at, reorderWait: time.Minute} }
	key := history.SenderKey("@a@1", "")
	steps := []struct {
		name string
		at   time.Time
		req  history.EntityRequest
		want intake
		last int64 // the sender's record afterwards
		n    int   // requests taken in ahead afterwards
	}{
		{"first", t0, entitySignal("s1", "x1", 1, 0, recent), intakeTaken, 1, 0},
		{"next batch's signal runs ahead of its predecessor: wait", t0, entitySignal("s3", "x3", 3, 2, recent), intakeWait, 1, 0},
		{"its predecessor, from another batch", t0, entitySignal("s2", "x2", 2, 1, recent), intakeTaken, 2, 0},
		{"now in order", t0, entitySignal("s3", "x3", 3, 2, recent), intakeTaken, 3, 0},
		{"a copy resent by a batch run again", t0.Add(time.Second), entitySignal("s2", "x2b", 2, 1, recent), intakeDup, 3, 0},
		{"a copy numbered differently by the batch run again", t0.Add(time.Second), entitySignal("s3", "x3b", 2, 1, recent), intakeDup, 3, 0},
		{"a new ID under a number seen (renumbered run): taken once", t0.Add(time.Second), entitySignal("s9", "x3b", 3, 2, recent), intakeTaken, 3, 0},
		{"a gap, sent recently: wait", t0.Add(time.Second), entitySignal("s6", "x6", 6, 5, recent), intakeWait, 3, 0},
		{"the gap after the reorder wait: taken ahead", t0.Add(2 * time.Minute), entitySignal("s6", "x6", 6, 5, recent), intakeTaken, 3, 1},
		{"the late predecessor closes the chain", t0.Add(2 * time.Minute), entitySignal("s5", "x5", 5, 3, recent), intakeTaken, 6, 0},
		{"a forgotten target's new chain, numbered above the old", t0.Add(3 * time.Minute), entitySignal("s7", "x7", 40, 0, recent), intakeTaken, 40, 0},
	}
	for _, c := range steps {
		if got := step(c.at).take(c.req); got != c.want {
			t.Fatalf("%s: verdict %s, want %s", c.name, got, c.want)
		}
		rec := st.Senders[key]
		if rec.Last != c.last || len(rec.Ahead) != c.n {
			t.Fatalf("%s: record %+v, want last %d with %d ahead", c.name, rec, c.last, c.n)
		}
	}
	if len(st.Senders) != 1 {
		t.Errorf("records %v, want one for the sending entity", st.Senders)
	}
	var ids []string
	for _, q := range st.Queue {
		ids = append(ids, q.ID)
	}
	if got := strings.Join(ids, ","); got != "s1,s2,s3,s9,s6,s5,s7" {
		t.Fatalf("queue %s", got)
	}
	for _, id := range ids {
		if _, ok := st.Applied[id]; !ok {
			t.Errorf("signal %s is not remembered by ID", id)
		}
	}
	// Within one batch, a second copy of a signal taken in is deleted only
	// after the commit.
	s := step(t0.Add(4 * time.Minute))
	if v := s.takeRequest(entitySignal("s8", "x8", 41, 40, recent)); v != intakeTaken {
		t.Fatalf("s8: %s", v)
	}
	if v := s.takeRequest(entitySignal("s8", "x8", 41, 40, recent)); v != intakeDupPending {
		t.Fatalf("s8 again: %s", v)
	}
	// Past the horizon of silence, the record and the IDs go.
	s.now = t0.Add(4*time.Minute + entityDedupHorizon)
	s.prune(nil)
	if st.Senders != nil || st.Applied != nil {
		t.Errorf("kept past the horizon: senders %v, applied %v", st.Senders, st.Applied)
	}
}

// TestEntityStepUnnumberedEntitySignals: signals without numbers (older
// versions, Durable Task, scheduled signals) are deduplicated by ID and
// neither ordered nor recorded per sender, as before.
func TestEntityStepUnnumberedEntitySignals(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	st := history.EntitySchedulerState{}
	s := entityStep{state: &st, now: t0, reorderWait: time.Minute}
	plain := entitySignal("u1", "x1", 0, 0, t0)
	scheduled := entitySignal("u2", "x2", 5, 4, t0)
	scheduled.Due = t0.Add(-time.Second)
	for _, r := range []history.EntityRequest{plain, scheduled} {
		if v := s.take(r); v != intakeTaken {
			t.Fatalf("%s: %s, want taken", r.ID, v)
		}
		if v := s.take(r); v != intakeDup {
			t.Fatalf("%s again: %s, want a copy", r.ID, v)
		}
	}
	if len(st.Senders) != 0 || len(st.Queue) != 2 || len(st.Applied) != 2 {
		t.Fatalf("senders %v, queue %d, applied %v", st.Senders, len(st.Queue), st.Applied)
	}
}

// TestOrderBatchEntitySenderAcrossExecutions: an entity's signals sent by
// different batches (executions) are one sender's, sorted by number.
func TestOrderBatchEntitySenderAcrossExecutions(t *testing.T) {
	items := []string{"s3", "s1", "s2"}
	a, b, c := entitySignal("s3", "x3", 3, 2, time.Time{}), entitySignal("s1", "x1", 1, 0, time.Time{}), entitySignal("s2", "x2", 2, 1, time.Time{})
	orderBatch(items, []*history.EntityRequest{&a, &b, &c})
	if got := strings.Join(items, ","); got != "s1,s2,s3" {
		t.Fatalf("order %s", got)
	}
}

// TestEntityStepNumberSignals: one counter over all targets; each target's
// predecessor is its previous signal; a target not signalled for sentKeep
// is forgotten and starts a new chain, numbered above everything before.
func TestEntityStepNumberSignals(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	st := history.EntitySchedulerState{}
	s := entityStep{state: &st, now: t0, reorderWait: time.Minute}
	type num struct {
		seq, pred int64
		predAt    time.Time
	}
	var got []num
	for _, target := range []string{"@b@1", "@c@1", "@b@1"} {
		seq, pred, at := s.numberSignal(target)
		got = append(got, num{seq, pred, at})
	}
	want := []num{{1, 0, time.Time{}}, {2, 0, time.Time{}}, {3, 1, t0}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("numbers %+v, want %+v", got, want)
		}
	}
	// The state survives its encoding (a batch run again reads it back).
	b, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := history.ParseEntitySchedulerState(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Sent.Last != 3 || back.Sent.To["@b@1"].Seq != 3 || !back.Sent.To["@c@1"].At.Equal(t0) {
		t.Fatalf("decoded %+v from %s", back.Sent, b)
	}
	s.now = t0.Add(s.sentKeep() - time.Second)
	s.prune(nil)
	if len(st.Sent.To) != 2 {
		t.Fatalf("forgotten before sentKeep: %+v", st.Sent)
	}
	s.now = t0.Add(s.sentKeep())
	s.prune(nil)
	if st.Sent.To != nil || st.Sent.Last != 3 {
		t.Fatalf("after sentKeep: %+v, want no targets and the counter kept", st.Sent)
	}
	if seq, pred, _ := s.numberSignal("@b@1"); seq != 4 || pred != 0 {
		t.Fatalf("after forgetting: seq %d pred %d, want 4 and 0", seq, pred)
	}
}
