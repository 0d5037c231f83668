package backendtest

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// loadHistory loads and fails the test on error.
func loadHistory(t *testing.T, b backend.Backend, id string) backend.History {
	t.Helper()
	h, err := b.LoadHistory(ctx(t), id)
	if err != nil {
		t.Fatalf("LoadHistory(%q): %v", id, err)
	}
	return h
}

// testHistoryRoundTrip checks that every field of every event type, large
// payloads and times at storage precision come back from history.
func (s *suite) testHistoryRoundTrip(t *testing.T) {
	b := s.newBackend(t)
	const id = "it's a/b#c?d^e\\f" // characters that need escaping in table keys and filters
	events := allEvents()
	large := events[4] // TaskScheduled
	large.EventID, large.Input = 99, largeJSON(100_000)
	events = append(events, large)
	etag, err := b.AppendHistory(ctx(t), id, "exec-1", 0, events, "")
	if err != nil || etag == "" {
		t.Fatalf("AppendHistory = %q, %v", etag, err)
	}
	h := loadHistory(t, b, id)
	if h.InstanceID != id || h.ExecutionID != "exec-1" || h.ETag != etag {
		t.Errorf("history of %q, execution %q, ETag %q; want %q, exec-1, %q", h.InstanceID, h.ExecutionID, h.ETag, id, etag)
	}
	if len(h.Events) != len(events) {
		t.Fatalf("loaded %d events, wrote %d", len(h.Events), len(events))
	}
	for i := range events {
		if !reflect.DeepEqual(h.Events[i], events[i]) {
			t.Errorf("event %d (%s)\n got %#v\nwant %#v", i, events[i].Type, h.Events[i], events[i])
		}
	}

	// Times come back as history.StorageTime of what was written: UTC,
	// truncated to 100 ns.
	jst := time.FixedZone("JST", 9*3600)
	precise := time.Date(2024, 3, 4, 14, 6, 7, 123456789, jst)
	ev := history.Event{Type: history.TimerCreated, EventID: 1, Timestamp: precise, FireAt: precise.Add(time.Hour)}
	if _, err := b.AppendHistory(ctx(t), id, "exec-1", len(events), []history.Event{ev}, etag); err != nil {
		t.Fatal(err)
	}
	h = loadHistory(t, b, id)
	got := h.Events[len(h.Events)-1]
	if got.Timestamp != history.StorageTime(precise) || got.FireAt != history.StorageTime(precise.Add(time.Hour)) {
		t.Errorf("times %#v / %#v, want %#v / %#v", got.Timestamp, got.FireAt, history.StorageTime(precise), history.StorageTime(precise.Add(time.Hour)))
	}

	// Many events in one append (more than one Azure transaction).
	many := completions(250)
	manyETag, err := b.AppendHistory(ctx(t), "many", "e", 0, many, "")
	if err != nil {
		t.Fatal(err)
	}
	mh := loadHistory(t, b, "many")
	if mh.ETag != manyETag || !reflect.DeepEqual(mh.Events, many) {
		t.Errorf("250 events: loaded %d, ETag %q (want %q)", len(mh.Events), mh.ETag, manyETag)
	}
	if _, err := b.AppendHistory(ctx(t), "many", "e", 250, completions(1), manyETag); err != nil {
		t.Errorf("append with the ETag of a 250-event append: %v", err)
	}

	empty := loadHistory(t, b, "never-started")
	if empty.InstanceID != "never-started" || empty.ETag != "" || empty.ExecutionID != "" || len(empty.Events) != 0 {
		t.Errorf("history of an unknown instance = %+v, want empty", empty)
	}
}

// testHistoryFencing checks the sentinel rules: "" only for a new history,
// otherwise the current ETag; a failed append changes nothing.
func (s *suite) testHistoryFencing(t *testing.T) {
	b := s.newBackend(t)
	const id = "fenced"
	events := completions(30)
	etag1, err := b.AppendHistory(ctx(t), id, "e1", 0, events[:10], "")
	if err != nil || etag1 == "" {
		t.Fatalf("first append = %q, %v", etag1, err)
	}
	if _, err := b.AppendHistory(ctx(t), id, "e1", 0, events[:2], ""); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf(`append with etag "" to an existing history = %v, want ErrConflict`, err)
	}
	etag2, err := b.AppendHistory(ctx(t), id, "e1", 10, events[10:20], etag1)
	if err != nil || etag2 == "" || etag2 == etag1 {
		t.Fatalf("append with the ETag = %q, %v (previous %q), want a new ETag", etag2, err, etag1)
	}
	for _, stale := range []string{etag1, `W/"datetime'2000-01-01T00%3A00%3A00.0000000Z'"`} {
		if _, err := b.AppendHistory(ctx(t), id, "e1", 20, events[20:], stale); !errors.Is(err, backend.ErrConflict) {
			t.Fatalf("append with stale ETag %q = %v, want ErrConflict", stale, err)
		}
	}
	h := loadHistory(t, b, id)
	if h.ETag != etag2 || !reflect.DeepEqual(h.Events, events[:20]) {
		t.Fatalf("after refused appends: %d events, ETag %q; want 20 and %q", len(h.Events), h.ETag, etag2)
	}
	// An append without events still moves the fence.
	etag3, err := b.AppendHistory(ctx(t), id, "e1", 20, nil, etag2)
	if err != nil || etag3 == "" || etag3 == etag2 {
		t.Fatalf("empty append = %q, %v; want a new ETag", etag3, err)
	}
	if _, err := b.AppendHistory(ctx(t), id, "e1", 20, events[20:], etag2); !errors.Is(err, backend.ErrConflict) {
		t.Errorf("append with the ETag an empty append replaced = %v, want ErrConflict", err)
	}
	if h := loadHistory(t, b, id); h.ETag != etag3 || len(h.Events) != 20 {
		t.Errorf("after the empty append: %d events, ETag %q; want 20 and %q", len(h.Events), h.ETag, etag3)
	}
	// An ETag for an instance without history is refused too.
	if _, err := b.AppendHistory(ctx(t), "no-history", "e1", 0, events[:1], etag3); !errors.Is(err, backend.ErrConflict) {
		t.Errorf("append with an ETag to an instance without history = %v, want ErrConflict", err)
	}
	if h := loadHistory(t, b, "no-history"); h.ETag != "" || len(h.Events) != 0 {
		t.Errorf("refused append created history: %+v", h)
	}
}

// testHistoryContinueAsNew checks that an append from position 0 of a new
// execution replaces the history when the ETag matches, and that the older
// execution's longer tail is not read back.
func (s *suite) testHistoryContinueAsNew(t *testing.T) {
	b := s.newBackend(t)
	const id = "eternal"
	first := completions(10)
	etag, err := b.AppendHistory(ctx(t), id, "e1", 0, first, "")
	if err != nil {
		t.Fatal(err)
	}
	next := allEvents()[:3]
	if _, err := b.AppendHistory(ctx(t), id, "e2", 0, next, ""); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf(`new execution with etag "" over existing history = %v, want ErrConflict`, err)
	}
	etag2, err := b.AppendHistory(ctx(t), id, "e2", 0, next, etag)
	if err != nil {
		t.Fatal(err)
	}
	h := loadHistory(t, b, id)
	if h.ExecutionID != "e2" || h.ETag != etag2 || !reflect.DeepEqual(h.Events, next) {
		t.Fatalf("after ContinueAsNew: execution %q, ETag %q, %d events; want e2, %q, 3 events", h.ExecutionID, h.ETag, len(h.Events), etag2)
	}
	more := completions(2)
	etag3, err := b.AppendHistory(ctx(t), id, "e2", 3, more, etag2)
	if err != nil {
		t.Fatal(err)
	}
	h = loadHistory(t, b, id)
	if want := append(append([]history.Event{}, next...), more...); h.ETag != etag3 || !reflect.DeepEqual(h.Events, want) {
		t.Errorf("the new execution's second append: %d events, ETag %q; want 5 and %q", len(h.Events), h.ETag, etag3)
	}
}

// testHistoryConcurrentWriters checks that of several writers with the same
// ETag exactly one wins.
func (s *suite) testHistoryConcurrentWriters(t *testing.T) {
	b := s.newBackend(t)
	const id = "contended"
	etag, err := b.AppendHistory(ctx(t), id, "e1", 0, completions(1), "")
	if err != nil {
		t.Fatal(err)
	}
	const writers = 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []int
	var errs []error
	for w := range writers {
		wg.Go(func() {
			ev := completions(2)[1]
			ev.TaskScheduledID = int32(100 + w)
			_, err := b.AppendHistory(ctx(t), id, "e1", 1, []history.Event{ev}, etag)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won = append(won, w)
			} else {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d writers won with the same ETag, want exactly 1 (errors: %v)", len(won), errs)
	}
	for _, err := range errs {
		if !errors.Is(err, backend.ErrConflict) {
			t.Errorf("losing writer: %v, want ErrConflict", err)
		}
	}
	h := loadHistory(t, b, id)
	if len(h.Events) != 2 || h.Events[1].TaskScheduledID != int32(100+won[0]) {
		t.Errorf("history holds %d events, last %+v; want the winner's (writer %d)", len(h.Events), h.Events[len(h.Events)-1], won[0])
	}
}

// testHistoryRejects checks that bad appends fail clearly and write
// nothing.
func (s *suite) testHistoryRejects(t *testing.T) {
	b := s.newBackend(t)
	const id = "rejects"
	etag, err := b.AppendHistory(ctx(t), id, "e1", 0, completions(2), "")
	if err != nil {
		t.Fatal(err)
	}
	unknown := completions(1)
	unknown[0].Type = history.EventType(77)
	tests := []struct {
		name        string
		execution   string
		from        int
		events      []history.Event
		wantMention string
	}{
		{"empty execution ID", "", 2, completions(1), "execution"},
		{"negative position", "e1", -1, completions(1), "-1"},
		{"unknown event type", "e1", 2, append(completions(1), unknown...), "77"},
	}
	for _, tc := range tests {
		_, err := b.AppendHistory(ctx(t), id, tc.execution, tc.from, tc.events, etag)
		if err == nil || errors.Is(err, backend.ErrConflict) || !strings.Contains(err.Error(), tc.wantMention) {
			t.Errorf("%s: %v, want an error (not a conflict) mentioning %q", tc.name, err, tc.wantMention)
		}
	}
	if h := loadHistory(t, b, id); h.ETag != etag || len(h.Events) != 2 {
		t.Errorf("rejected appends changed history: %d events, ETag %q (want 2, %q)", len(h.Events), h.ETag, etag)
	}
}
