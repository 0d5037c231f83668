package azurestorage

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// blobNameColumn is the History column that names the blob of an offloaded
// column, e.g. "ResultBlobName".
func blobNameColumn(column string) string { return column + "BlobName" }

// pendingBlob is a table value on its way to a blob.
type pendingBlob struct {
	column, name string
	data         string
}

// offloadHistoryRow moves the large offloadable columns of History row e to
// blobs in the Durable Task way: the column becomes "" and
// {Column}BlobName names the blob. It returns the blobs to upload; e is
// unchanged when nothing is large.
func offloadHistoryRow(e *entity, eventType string) []pendingBlob {
	var out []pendingBlob
	for i := range e.props {
		p := &e.props[i]
		if p.kind == edmString && exceedsInline(p.s) && slices.Contains(offloadedColumns, p.name) {
			out = append(out, pendingBlob{column: p.name, name: historyBlobName(e.pk, e.rk, eventType, p.name), data: p.s})
			p.s = ""
		}
	}
	for _, b := range out {
		e.str(blobNameColumn(b.column), b.name)
	}
	return out
}

// uploadAll uploads the blobs in parallel.
func (s *Store) uploadAll(ctx context.Context, blobs []pendingBlob) error {
	return forEachLimit(ctx, len(blobs), func(ctx context.Context, i int) error {
		return s.blobs.upload(ctx, blobs[i].name, []byte(blobs[i].data))
	})
}

// restoreHistoryRows puts the values of offloaded columns back into the
// History rows, downloading their blobs in parallel. Rows without
// {Column}BlobName columns cost nothing.
func (s *Store) restoreHistoryRows(ctx context.Context, rows []members) error {
	type job struct {
		row          members
		column, name string
		value        string
	}
	var jobs []job
	for _, r := range rows {
		for _, column := range offloadedColumns {
			if name, _ := r.str(blobNameColumn(column)); name != "" {
				jobs = append(jobs, job{row: r, column: column, name: name})
			}
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	err := forEachLimit(ctx, len(jobs), func(ctx context.Context, i int) error {
		var err error
		jobs[i].value, err = s.blobs.download(ctx, jobs[i].name)
		return err
	})
	if err != nil {
		return err
	}
	for _, j := range jobs {
		v, err := json.Marshal(j.value)
		if err != nil {
			return fmt.Errorf("azurestorage: %s from blob %s: %w", j.column, j.name, err)
		}
		j.row[j.column] = v
	}
	return nil
}

// blobRefs remembers which blob holds a large Instances value that this
// Store wrote or read, so that rewriting a row with the same value (the
// engine rewrites the whole row, input included, at every checkpoint) reuses
// the blob instead of uploading a copy. Keys include the execution ID, so a
// purged and restarted instance never reuses a deleted blob; PurgeInstance
// forgets the instance's entries.
type blobRefs struct {
	mu sync.Mutex
	m  map[blobRefKey]string // blob URL
}

type blobRefKey struct {
	pk, executionID, column string
	sum                     [sha256.Size]byte
}

// maxBlobRefs bounds the memory of blobRefs (about 200 bytes per entry).
const maxBlobRefs = 4096

func (c *blobRefs) get(k blobRefKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.m[k]
	return u, ok
}

func (c *blobRefs) put(k blobRefKey, url string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[blobRefKey]string{}
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= maxBlobRefs {
		for old := range c.m { // evict an arbitrary entry
			delete(c.m, old)
			break
		}
	}
	c.m[k] = url
}

func (c *blobRefs) forget(pk string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if k.pk == pk {
			delete(c.m, k)
		}
	}
}

// instanceBlob is a large Instances value on its way to a blob.
type instanceBlob struct {
	key  blobRefKey
	blob pendingBlob
	url  string
}

// offloadInstanceRow moves large Input, Output and CustomStatus values of
// Instances row e (of execution executionID) to blobs, leaving the blob's
// URL in the column as Durable Task does. A value this Store has stored
// before for the same execution reuses its blob; the others are returned,
// to be uploaded with uploadInstanceBlobs once the row has validated.
func (s *Store) offloadInstanceRow(e *entity, executionID string) []instanceBlob {
	var out []instanceBlob
	for i := range e.props {
		p := &e.props[i]
		if p.kind != edmString || !exceedsInline(p.s) || !slices.Contains(offloadedInstanceColumns, p.name) {
			continue
		}
		key := blobRefKey{pk: e.pk, executionID: executionID, column: p.name, sum: sha256.Sum256([]byte(p.s))}
		if url, ok := s.blobRefs.get(key); ok {
			p.s = url
			continue
		}
		name := historyBlobName(e.pk, "", p.name, p.name)
		b := instanceBlob{key: key, blob: pendingBlob{column: p.name, name: name, data: p.s}, url: s.blobs.URL(name)}
		p.s = b.url
		out = append(out, b)
	}
	return out
}

// uploadInstanceBlobs uploads the blobs of offloadInstanceRow in parallel
// and remembers them for reuse.
func (s *Store) uploadInstanceBlobs(ctx context.Context, blobs []instanceBlob) error {
	if len(blobs) == 0 {
		return nil
	}
	err := forEachLimit(ctx, len(blobs), func(ctx context.Context, i int) error {
		return s.blobs.upload(ctx, blobs[i].blob.name, []byte(blobs[i].blob.data))
	})
	if err != nil {
		return err
	}
	for _, b := range blobs {
		s.blobRefs.put(b.key, b.url)
	}
	return nil
}

// restoreInstances replaces blob URLs in the Input (only when withInput),
// Output and CustomStatus of the rows by the values, downloading in
// parallel. A URL naming an offloaded ExecutionStarted message (how Durable
// Task clients store a large start input) gives that message's input.
func (s *Store) restoreInstances(ctx context.Context, rows []backend.InstanceState, withInput bool) error {
	type job struct {
		st           *backend.InstanceState
		column, name string
		dst          *string
		url, value   string
	}
	var jobs []job
	for i := range rows {
		st := &rows[i]
		for _, f := range []struct {
			column string
			dst    *string
		}{{colInput, &st.Input}, {colOutput, &st.Output}, {colCustomStatus, &st.CustomStatus}} {
			if f.column == colInput && !withInput {
				continue
			}
			if name, ok := s.blobs.nameFromURL(*f.dst); ok {
				jobs = append(jobs, job{st: st, column: f.column, name: name, dst: f.dst, url: *f.dst})
			}
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	err := forEachLimit(ctx, len(jobs), func(ctx context.Context, i int) error {
		j := &jobs[i]
		text, err := s.blobs.download(ctx, j.name)
		if err != nil {
			return fmt.Errorf("azurestorage: %s of instance %s: %w", j.column, j.st.InstanceID, err)
		}
		if strings.HasPrefix(path.Base(j.name), "message-") {
			msg, err := decodeMessage(text)
			if err != nil {
				return fmt.Errorf("azurestorage: %s of instance %s: blob %s holds no valid message: %w", j.column, j.st.InstanceID, j.name, err)
			}
			text = msg.Event.Input
		}
		j.value = text
		return nil
	})
	if err != nil {
		return err
	}
	for _, j := range jobs {
		*j.dst = j.value
		if j.column == colCustomStatus && j.value == "null" {
			*j.dst = ""
		}
		key := blobRefKey{pk: escapeKey(j.st.InstanceID), executionID: j.st.ExecutionID, column: j.column, sum: sha256.Sum256([]byte(j.value))}
		s.blobRefs.put(key, j.url)
	}
	return nil
}
