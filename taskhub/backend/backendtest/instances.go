package backendtest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func getInstance(t *testing.T, b backend.Backend, id string, withInput bool) backend.InstanceState {
	t.Helper()
	st, err := b.GetInstance(ctx(t), id, withInput)
	if err != nil {
		t.Fatalf("GetInstance(%q): %v", id, err)
	}
	return st
}

// fullInstance returns a row with every column set.
func fullInstance(id string) backend.InstanceState {
	return backend.InstanceState{
		InstanceID: id, Name: "MyOrch", Version: "1.2", ExecutionID: "exec-1", Input: `{"x":1,"city":"Zürich"}`,
		Output: `"the output"`, CustomStatus: `{"step":3}`, CreatedTime: ts(1, 1), LastUpdatedTime: ts(2, 2),
		CompletedTime: ts(3, 3), Status: history.StatusCompleted, ScheduledStartTime: ts(0, 4), Generation: 2,
		Tags: map[string]string{"owner": "team-a", "ünï": "cödé"}, HistoryPosition: 17,
	}
}

// testInstances checks create, read and fenced replace of status rows.
func (s *suite) testInstances(t *testing.T) {
	b := s.newBackend(t)
	st := fullInstance("inst/1 #?^")
	st.Status, st.Output, st.CompletedTime, st.HistoryPosition = history.StatusPending, "", time.Time{}, 0
	etag, err := b.CreateInstance(ctx(t), st)
	if err != nil || etag == "" {
		t.Fatalf("CreateInstance = %q, %v", etag, err)
	}
	if _, err := b.CreateInstance(ctx(t), st); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("second CreateInstance = %v, want ErrExists", err)
	}
	st.ETag = etag
	if got := getInstance(t, b, st.InstanceID, true); !reflect.DeepEqual(got, st) {
		t.Errorf("GetInstance after create\n got %#v\nwant %#v", got, st)
	}
	noInput := st
	noInput.Input = ""
	if got := getInstance(t, b, st.InstanceID, false); !reflect.DeepEqual(got, noInput) {
		t.Errorf("GetInstance without input\n got %#v\nwant %#v", got, noInput)
	}

	done := fullInstance(st.InstanceID)
	done.ETag = etag
	etag2, err := b.UpdateInstance(ctx(t), done)
	if err != nil || etag2 == "" || etag2 == etag {
		t.Fatalf("UpdateInstance = %q, %v; want a new ETag", etag2, err)
	}
	if _, err := b.UpdateInstance(ctx(t), done); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("UpdateInstance with a stale ETag = %v, want ErrConflict", err)
	}
	done.ETag = etag2
	if got := getInstance(t, b, st.InstanceID, true); !reflect.DeepEqual(got, done) {
		t.Errorf("after update\n got %#v\nwant %#v", got, done)
	}

	// Times come back as history.StorageTime of what was written.
	precise := time.Date(2024, 3, 4, 14, 6, 7, 123456789, time.FixedZone("JST", 9*3600))
	done.CreatedTime, done.LastUpdatedTime, done.CompletedTime = precise, precise.Add(time.Second), precise.Add(time.Minute)
	if _, err := b.UpdateInstance(ctx(t), done); err != nil {
		t.Fatal(err)
	}
	got := getInstance(t, b, st.InstanceID, true)
	if got.CreatedTime != history.StorageTime(precise) || got.LastUpdatedTime != history.StorageTime(precise.Add(time.Second)) ||
		got.CompletedTime != history.StorageTime(precise.Add(time.Minute)) {
		t.Errorf("times %v, %v, %v; want them at storage precision in UTC", got.CreatedTime, got.LastUpdatedTime, got.CompletedTime)
	}

	// Large values are kept whole (Azure Storage moves them to blobs).
	big := fullInstance("big")
	big.Input, big.Output, big.CustomStatus = largeJSON(100_000), largeJSON(80_000), largeJSON(70_000)
	etagBig, err := b.CreateInstance(ctx(t), big)
	if err != nil {
		t.Fatal(err)
	}
	big.ETag = etagBig
	if got := getInstance(t, b, "big", true); !reflect.DeepEqual(got, big) {
		t.Errorf("large row: input %d, output %d, custom status %d bytes back (wrote %d, %d, %d)",
			len(got.Input), len(got.Output), len(got.CustomStatus), len(big.Input), len(big.Output), len(big.CustomStatus))
	}
}

// testInstanceMerge checks that a merge sets every modelled column from
// the state, empty values included, and is fenced like an update.
func (s *suite) testInstanceMerge(t *testing.T) {
	b := s.newBackend(t)
	st := fullInstance("merged")
	etag, err := b.CreateInstance(ctx(t), st)
	if err != nil {
		t.Fatal(err)
	}
	cleared := backend.InstanceState{
		InstanceID: st.InstanceID, Name: "Renamed", ExecutionID: "exec-2", CreatedTime: ts(10, 0), LastUpdatedTime: ts(11, 0),
		ScheduledStartTime: ts(9, 0), Status: history.StatusRunning, HistoryPosition: 3, ETag: etag,
		// Version, Input, Output, CustomStatus, Tags and Generation empty:
		// the merge must clear them.
	}
	etag2, err := b.MergeInstance(ctx(t), cleared)
	if err != nil || etag2 == "" || etag2 == etag {
		t.Fatalf("MergeInstance = %q, %v; want a new ETag", etag2, err)
	}
	want := cleared
	want.ETag = etag2 // CompletedTime reads as zero: the status is not final
	if got := getInstance(t, b, st.InstanceID, true); !reflect.DeepEqual(got, want) {
		t.Errorf("after merge\n got %#v\nwant %#v", got, want)
	}
	if _, err := b.MergeInstance(ctx(t), cleared); !errors.Is(err, backend.ErrConflict) {
		t.Errorf("MergeInstance with a stale ETag = %v, want ErrConflict", err)
	}
	// Back to final with every column set.
	final := fullInstance(st.InstanceID)
	final.ETag = etag2
	etag3, err := b.MergeInstance(ctx(t), final)
	if err != nil {
		t.Fatal(err)
	}
	final.ETag = etag3
	if got := getInstance(t, b, st.InstanceID, true); !reflect.DeepEqual(got, final) {
		t.Errorf("after the second merge\n got %#v\nwant %#v", got, final)
	}
	// Without an ETag a merge is an upsert.
	fresh := fullInstance("merge-upsert")
	etag4, err := b.MergeInstance(ctx(t), fresh)
	if err != nil || etag4 == "" {
		t.Fatalf("MergeInstance without ETag of a new row = %q, %v", etag4, err)
	}
	fresh.ETag = etag4
	if got := getInstance(t, b, fresh.InstanceID, true); !reflect.DeepEqual(got, fresh) {
		t.Errorf("upserted by merge\n got %#v\nwant %#v", got, fresh)
	}
}

// testInstanceMissingRows checks reads and fenced writes of rows that do
// not exist, and unconditional upserts.
func (s *suite) testInstanceMissingRows(t *testing.T) {
	b := s.newBackend(t)
	if _, err := b.GetInstance(ctx(t), "nope", true); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("GetInstance of a missing row = %v, want ErrNotFound", err)
	}
	other := fullInstance("someone-else")
	etag, err := b.CreateInstance(ctx(t), other)
	if err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]func(backend.InstanceState) (string, error){
		"UpdateInstance": func(st backend.InstanceState) (string, error) { return b.UpdateInstance(ctx(t), st) },
		"MergeInstance":  func(st backend.InstanceState) (string, error) { return b.MergeInstance(ctx(t), st) },
	} {
		missing := fullInstance("missing-" + name)
		missing.ETag = etag // an ETag that exists, of another row
		if _, err := write(missing); !errors.Is(err, backend.ErrConflict) || !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("fenced %s of a missing row = %v, want ErrConflict and ErrNotFound", name, err)
		}
		if _, err := b.GetInstance(ctx(t), missing.InstanceID, false); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("the refused %s created the row: %v", name, err)
		}
		missing.ETag = ""
		etag, err := write(missing)
		if err != nil {
			t.Fatalf("%s without ETag (upsert): %v", name, err)
		}
		missing.ETag = etag
		if got := getInstance(t, b, missing.InstanceID, true); !reflect.DeepEqual(got, missing) {
			t.Errorf("upserted by %s\n got %#v\nwant %#v", name, got, missing)
		}
	}
	// An unconditional update replaces an existing row.
	replaced := backend.InstanceState{InstanceID: other.InstanceID, Name: "Other", Status: history.StatusRunning, CreatedTime: ts(5, 0)}
	etag2, err := b.UpdateInstance(ctx(t), replaced)
	if err != nil {
		t.Fatal(err)
	}
	replaced.ETag = etag2
	if got := getInstance(t, b, other.InstanceID, true); !reflect.DeepEqual(got, replaced) {
		t.Errorf("unconditional update\n got %#v\nwant %#v", got, replaced)
	}
}

// testQueryInstances checks every filter and paging.
func (s *suite) testQueryInstances(t *testing.T) {
	b := s.newBackend(t)
	statuses := []history.OrchestrationStatus{history.StatusRunning, history.StatusCompleted, history.StatusRunning,
		history.StatusFailed, history.StatusRunning, history.StatusPending, history.StatusRunning, history.StatusRunning,
		history.StatusTerminated, history.StatusSuspended}
	rows := map[string]backend.InstanceState{}
	for i, status := range statuses {
		prefix := "a/"
		switch {
		case i >= 8:
			prefix = "c'"
		case i >= 6:
			prefix = "b/"
		}
		st := backend.InstanceState{InstanceID: fmt.Sprintf("%s%d", prefix, i), Name: "Orch", Input: fmt.Sprint(i),
			Status: status, CreatedTime: ts(i, 0), LastUpdatedTime: ts(i, 1), Tags: map[string]string{"i": fmt.Sprint(i)}}
		etag, err := b.CreateInstance(ctx(t), st)
		if err != nil {
			t.Fatal(err)
		}
		st.ETag = etag
		rows[st.InstanceID] = st
	}
	collect := func(t *testing.T, q backend.InstanceQuery) []string {
		t.Helper()
		var ids []string
		pages := 0
		for {
			page, next, err := b.QueryInstances(ctx(t), q)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if q.PageSize > 0 && len(page) > int(q.PageSize) {
				t.Errorf("page of %d rows with page size %d", len(page), q.PageSize)
			}
			for _, st := range page {
				want := rows[st.InstanceID]
				if !q.WithInput {
					want.Input = ""
				}
				if !reflect.DeepEqual(st, want) {
					t.Errorf("queried row\n got %#v\nwant %#v", st, want)
				}
				ids = append(ids, st.InstanceID)
			}
			if next == "" {
				break
			}
			if pages > 50 {
				t.Fatal("paging does not end")
			}
			q.Continuation = next
		}
		if q.PageSize > 0 {
			if least := (len(ids) + int(q.PageSize) - 1) / int(q.PageSize); pages < least {
				t.Errorf("%d rows in %d pages of at most %d", len(ids), pages, q.PageSize)
			}
		}
		return ids
	}
	all := []string{"a/0", "a/1", "a/2", "a/3", "a/4", "a/5", "b/6", "b/7", "c'8", "c'9"}
	tests := []struct {
		name string
		q    backend.InstanceQuery
		want []string
	}{
		{"everything", backend.InstanceQuery{}, all},
		{"everything with input, pages of 3", backend.InstanceQuery{WithInput: true, PageSize: 3}, all},
		{"pages of 1", backend.InstanceQuery{PageSize: 1}, all},
		{"running, pages of 2", backend.InstanceQuery{Statuses: []history.OrchestrationStatus{history.StatusRunning}, PageSize: 2},
			[]string{"a/0", "a/2", "a/4", "b/6", "b/7"}},
		{"several statuses", backend.InstanceQuery{Statuses: []history.OrchestrationStatus{history.StatusCompleted,
			history.StatusTerminated, history.StatusSuspended}}, []string{"a/1", "c'8", "c'9"}},
		{"prefix", backend.InstanceQuery{InstanceIDPrefix: "b/"}, []string{"b/6", "b/7"}},
		{"prefix with a quote", backend.InstanceQuery{InstanceIDPrefix: "c'", WithInput: true}, []string{"c'8", "c'9"}},
		{"prefix matching nothing", backend.InstanceQuery{InstanceIDPrefix: "zz"}, nil},
		{"created from (inclusive)", backend.InstanceQuery{CreatedFrom: ts(7, 0)}, []string{"b/7", "c'8", "c'9"}},
		{"created to (inclusive)", backend.InstanceQuery{CreatedTo: ts(1, 0)}, []string{"a/0", "a/1"}},
		{"created range and statuses", backend.InstanceQuery{CreatedFrom: ts(1, 0), CreatedTo: ts(5, 0),
			Statuses: []history.OrchestrationStatus{history.StatusCompleted, history.StatusFailed, history.StatusPending}},
			[]string{"a/1", "a/3", "a/5"}},
		{"every filter, pages of 1", backend.InstanceQuery{CreatedFrom: ts(2, 0), CreatedTo: ts(9, 0), InstanceIDPrefix: "a/",
			Statuses: []history.OrchestrationStatus{history.StatusRunning}, PageSize: 1, WithInput: true}, []string{"a/2", "a/4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ids := collect(t, tc.q)
			sorted := slices.Clone(ids)
			slices.Sort(sorted)
			if !slices.Equal(sorted, tc.want) {
				t.Errorf("instances %v, want %v", ids, tc.want)
			}
			if len(slices.Compact(sorted)) != len(ids) {
				t.Errorf("instances listed twice: %v", ids)
			}
		})
	}
	// Entities ("@name@key") are left out on request, with paging too.
	for i, id := range []string{"@counter@1", "@counter@2"} {
		st := backend.InstanceState{InstanceID: id, Name: id, Status: history.StatusRunning, CreatedTime: ts(20+i, 0), LastUpdatedTime: ts(20+i, 1)}
		etag, err := b.CreateInstance(ctx(t), st)
		if err != nil {
			t.Fatal(err)
		}
		st.ETag = etag
		rows[id] = st
	}
	for _, tc := range []struct {
		name string
		q    backend.InstanceQuery
		want []string
	}{
		{"with entities", backend.InstanceQuery{}, append([]string{"@counter@1", "@counter@2"}, all...)},
		{"without entities, pages of 2", backend.InstanceQuery{ExcludeEntities: true, PageSize: 2}, all},
		{"without entities, running", backend.InstanceQuery{ExcludeEntities: true, Statuses: []history.OrchestrationStatus{history.StatusRunning}},
			[]string{"a/0", "a/2", "a/4", "b/6", "b/7"}},
		{"entities by prefix", backend.InstanceQuery{InstanceIDPrefix: "@"}, []string{"@counter@1", "@counter@2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := collect(t, tc.q)
			slices.Sort(ids)
			if !slices.Equal(ids, tc.want) {
				t.Errorf("instances %v, want %v", ids, tc.want)
			}
		})
	}
	if _, _, err := b.QueryInstances(ctx(t), backend.InstanceQuery{Continuation: "not a token!"}); err == nil || !strings.Contains(err.Error(), "continuation") {
		t.Errorf("a bad continuation token: %v, want an error naming it", err)
	}
}

// testPurgeInstance checks that a purge removes the row and the history of
// one instance only.
func (s *suite) testPurgeInstance(t *testing.T) {
	b := s.newBackend(t)
	const id, keep, rowOnly = "purge'me", "purge'me-not", "row-only"
	big := completions(150)
	big[0].Result = largeJSON(80_000)
	if _, err := b.AppendHistory(ctx(t), id, "e1", 0, big, ""); err != nil {
		t.Fatal(err)
	}
	for _, st := range []backend.InstanceState{fullInstance(id), fullInstance(keep), fullInstance(rowOnly)} {
		if _, err := b.CreateInstance(ctx(t), st); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.AppendHistory(ctx(t), keep, "e1", 0, completions(2), ""); err != nil {
		t.Fatal(err)
	}
	for _, purged := range []string{id, rowOnly} {
		if err := b.PurgeInstance(ctx(t), purged); err != nil {
			t.Fatalf("PurgeInstance(%q): %v", purged, err)
		}
		if h := loadHistory(t, b, purged); len(h.Events) != 0 || h.ETag != "" || h.ExecutionID != "" {
			t.Errorf("history of %q after purge: %d events, ETag %q", purged, len(h.Events), h.ETag)
		}
		if _, err := b.GetInstance(ctx(t), purged, false); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("row of %q after purge: %v, want ErrNotFound", purged, err)
		}
		if err := b.PurgeInstance(ctx(t), purged); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("second purge of %q = %v, want ErrNotFound", purged, err)
		}
	}
	// A purged instance starts afresh.
	if _, err := b.AppendHistory(ctx(t), id, "e2", 0, completions(1), ""); err != nil {
		t.Errorf("new history after purge: %v", err)
	}
	if h := loadHistory(t, b, keep); len(h.Events) != 2 {
		t.Errorf("purge touched another instance's history: %d events left", len(h.Events))
	}
	if _, err := b.GetInstance(ctx(t), keep, false); err != nil {
		t.Errorf("purge touched another instance's row: %v", err)
	}
	if err := b.PurgeInstance(ctx(t), "never-existed"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("purge of an unknown instance = %v, want ErrNotFound", err)
	}
}

// testBadInstanceIDs checks that IDs storage cannot key are refused
// clearly by every instance-keyed method.
func (s *suite) testBadInstanceIDs(t *testing.T) {
	b := s.newBackend(t)
	for _, id := range []string{"", "bad\xffutf8", strings.Repeat("/", 300)} {
		calls := map[string]func() error{
			"LoadHistory":    func() error { _, err := b.LoadHistory(ctx(t), id); return err },
			"AppendHistory":  func() error { _, err := b.AppendHistory(ctx(t), id, "e", 0, completions(1), ""); return err },
			"GetInstance":    func() error { _, err := b.GetInstance(ctx(t), id, false); return err },
			"CreateInstance": func() error { _, err := b.CreateInstance(ctx(t), backend.InstanceState{InstanceID: id}); return err },
			"UpdateInstance": func() error { _, err := b.UpdateInstance(ctx(t), backend.InstanceState{InstanceID: id}); return err },
			"MergeInstance":  func() error { _, err := b.MergeInstance(ctx(t), backend.InstanceState{InstanceID: id}); return err },
			"PurgeInstance":  func() error { return b.PurgeInstance(ctx(t), id) },
		}
		for name, call := range calls {
			err := call()
			if err == nil || errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), "instance ID") {
				t.Errorf("%s(%q): %v, want an error about the instance ID", name, id, err)
			}
		}
	}
}
