package memory

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// instanceRow is one Instances row in stored form (ETag empty).
type instanceRow struct {
	st   backend.InstanceState
	etag string
}

// storedInstance returns st as the table keeps it: times at storage
// precision, "null" custom status as none, empty tags as nil, no ETag.
func storedInstance(st backend.InstanceState) backend.InstanceState {
	for _, t := range []*time.Time{&st.CreatedTime, &st.LastUpdatedTime, &st.CompletedTime, &st.ScheduledStartTime} {
		*t = storageTime(*t)
	}
	if st.CustomStatus == "null" {
		st.CustomStatus = "" // what azurestorage writes for none
	}
	st.Tags = stringMap(st.Tags)
	st.ETag = ""
	return st
}

// read returns the row as a reader sees it: a copy with its ETag, and a
// CompletedTime only with a final status (merges may leave an older one).
func (r *instanceRow) read(withInput bool) backend.InstanceState {
	st := r.st
	st.Tags = stringMap(st.Tags)
	st.ETag = r.etag
	if !st.Status.IsTerminal() {
		st.CompletedTime = time.Time{}
	}
	if !withInput {
		st.Input = ""
	}
	return st
}

// GetInstance reads an instance's status row (ErrNotFound if none). Input
// is dropped unless withInput.
func (b *Backend) GetInstance(ctx context.Context, instanceID string, withInput bool) (backend.InstanceState, error) {
	op := "get instance " + instanceID
	if err := checkInstanceID(op, instanceID); err != nil {
		return backend.InstanceState{}, err
	}
	if err := b.enter(ctx, op); err != nil {
		return backend.InstanceState{}, err
	}
	defer b.h.mu.Unlock()
	r := b.h.instances[instanceID]
	if r == nil {
		return backend.InstanceState{}, fmt.Errorf("memory: %s: %w", op, backend.ErrNotFound)
	}
	return r.read(withInput), nil
}

// CreateInstance inserts a status row (ErrExists if present) and returns
// its ETag.
func (b *Backend) CreateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	op := "create instance " + st.InstanceID
	if err := checkInstanceID(op, st.InstanceID); err != nil {
		return "", err
	}
	if err := b.enter(ctx, op); err != nil {
		return "", err
	}
	defer b.h.mu.Unlock()
	if b.h.instances[st.InstanceID] != nil {
		return "", fmt.Errorf("memory: %s: the row exists: %w", op, backend.ErrExists)
	}
	r := &instanceRow{st: storedInstance(st), etag: b.st.etag()}
	b.h.instances[st.InstanceID] = r
	return r.etag, nil
}

// UpdateInstance replaces the status row if its ETag still equals st.ETag
// (ErrConflict otherwise; also when the row is gone, then with ErrNotFound
// too), or upserts it unconditionally when st.ETag is "". It returns the
// new ETag.
func (b *Backend) UpdateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	return b.writeInstance(ctx, "update", st, false)
}

// MergeInstance is UpdateInstance as a Merge, with azurestorage's
// semantics: every column is set from st, empty strings and nil tags
// included, except that a zero time leaves the stored time in place (a
// Merge cannot store a null date).
func (b *Backend) MergeInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	return b.writeInstance(ctx, "merge", st, true)
}

func (b *Backend) writeInstance(ctx context.Context, op string, st backend.InstanceState, merge bool) (string, error) {
	op += " instance " + st.InstanceID
	if err := checkInstanceID(op, st.InstanceID); err != nil {
		return "", err
	}
	if err := b.enter(ctx, op); err != nil {
		return "", err
	}
	defer b.h.mu.Unlock()
	r := b.h.instances[st.InstanceID]
	switch {
	case st.ETag != "" && r == nil:
		return "", fmt.Errorf("memory: %s: the row is gone: %w (%w)", op, backend.ErrConflict, backend.ErrNotFound)
	case st.ETag != "" && r.etag != st.ETag:
		return "", fmt.Errorf("memory: %s: the row changed (ETag %s, not %s): %w", op, r.etag, st.ETag, backend.ErrConflict)
	}
	next := storedInstance(st)
	if merge && r != nil {
		for _, t := range []struct{ dst, old *time.Time }{
			{&next.CreatedTime, &r.st.CreatedTime}, {&next.LastUpdatedTime, &r.st.LastUpdatedTime},
			{&next.CompletedTime, &r.st.CompletedTime}, {&next.ScheduledStartTime, &r.st.ScheduledStartTime},
		} {
			if t.dst.IsZero() {
				*t.dst = *t.old
			}
		}
	}
	if r == nil {
		r = &instanceRow{}
		b.h.instances[st.InstanceID] = r
	}
	r.st, r.etag = next, b.st.etag()
	return r.etag, nil
}

// QueryInstances lists the rows matching q in instance ID order, one page
// at a time (PageSize 0 = 100, at most 1000). The continuation is "" on the
// last page; rows written after a page was read appear on a later page if
// their ID sorts after it.
func (b *Backend) QueryInstances(ctx context.Context, q backend.InstanceQuery) ([]backend.InstanceState, string, error) {
	const op = "query instances"
	if err := ctxErr(ctx, op); err != nil {
		return nil, "", err
	}
	after := ""
	if q.Continuation != "" {
		id, ok := parseContinuation(q.Continuation)
		if !ok {
			return nil, "", fmt.Errorf("memory: %s: invalid continuation token %q", op, q.Continuation)
		}
		after = id
	}
	size := int(q.PageSize)
	if size <= 0 {
		size = defaultPageSize
	}
	size = min(size, maxPageSize)
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	if err := b.requireHub(op); err != nil {
		return nil, "", err
	}
	ids := make([]string, 0, len(b.h.instances))
	for id := range b.h.instances {
		if (q.Continuation == "" || id > after) && strings.HasPrefix(id, q.InstanceIDPrefix) &&
			!(q.ExcludeEntities && strings.HasPrefix(id, "@")) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []backend.InstanceState
	for i, id := range ids {
		st := b.h.instances[id].read(q.WithInput)
		if !matches(&st, &q) {
			continue
		}
		if len(out) == size {
			return out, formatContinuation(ids[i-1]), nil
		}
		out = append(out, st)
	}
	return out, "", nil
}

// matches applies the filters of q other than the prefix, as the Table
// service evaluates Durable Task's query: a row without CreatedTime fails
// any time bound.
func matches(st *backend.InstanceState, q *backend.InstanceQuery) bool {
	if len(q.Statuses) > 0 && !slices.Contains(q.Statuses, st.Status) {
		return false
	}
	if !q.CreatedFrom.IsZero() && (st.CreatedTime.IsZero() || st.CreatedTime.Before(storageTime(q.CreatedFrom))) {
		return false
	}
	if !q.CreatedTo.IsZero() && (st.CreatedTime.IsZero() || st.CreatedTime.After(storageTime(q.CreatedTo))) {
		return false
	}
	return true
}

const continuationPrefix = "mem1:"

func formatContinuation(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(continuationPrefix + lastID))
}

func parseContinuation(token string) (string, bool) {
	data, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || !strings.HasPrefix(string(data), continuationPrefix) {
		return "", false
	}
	return strings.TrimPrefix(string(data), continuationPrefix), true
}

// PurgeInstance deletes an instance's history and status row; ErrNotFound
// when neither existed.
func (b *Backend) PurgeInstance(ctx context.Context, instanceID string) error {
	op := "purge instance " + instanceID
	if err := checkInstanceID(op, instanceID); err != nil {
		return err
	}
	if err := b.enter(ctx, op); err != nil {
		return err
	}
	defer b.h.mu.Unlock()
	_, hadHistory := b.h.history[instanceID]
	_, hadRow := b.h.instances[instanceID]
	delete(b.h.history, instanceID)
	delete(b.h.instances, instanceID)
	if !hadHistory && !hadRow {
		return fmt.Errorf("memory: %s: %w", op, backend.ErrNotFound)
	}
	return nil
}
