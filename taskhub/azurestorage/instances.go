package azurestorage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Columns of the Instances table.
const (
	colName               = "Name"
	colVersion            = "Version"
	colInput              = "Input"
	colOutput             = "Output"
	colCustomStatus       = "CustomStatus"
	colCreatedTime        = "CreatedTime"
	colLastUpdatedTime    = "LastUpdatedTime"
	colCompletedTime      = "CompletedTime"
	colRuntimeStatus      = "RuntimeStatus"
	colScheduledStartTime = "ScheduledStartTime"
	colGeneration         = "Generation"
	colTags               = "Tags"
	colTaskHubName        = "TaskHubName"
	// colHistoryPosition is our own column (Durable Task ignores columns it
	// does not know): the history position a row was computed from.
	colHistoryPosition = "HistoryPosition"
)

// Columns a Durable Task client writes when it moves a large value of a new
// row to a blob: the value column is then "" and these name the blob.
var (
	colInputBlobName  = blobNameColumn(colInput)
	colOutputBlobName = blobNameColumn(colOutput)
)

// selectWithoutInput lists every Instances column except Input.
var selectWithoutInput = strings.Join([]string{"PartitionKey", "RowKey", colName, colVersion, colExecutionID, colOutput,
	colCustomStatus, colCreatedTime, colLastUpdatedTime, colCompletedTime, colRuntimeStatus, colScheduledStartTime,
	colGeneration, colTags, colTaskHubName, colHistoryPosition}, ",")

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// instanceEntity renders st as an Instances row (PartitionKey = escaped
// instance ID, RowKey ""). For a merge, a Merge leaves every column it does
// not name as stored, so empty Input and Output are written as "" (the Table
// service cannot store a null) together with an empty {Column}BlobName, lest
// a blob name left by a Durable Task client stand in for the value.
func (s *Store) instanceEntity(st *backend.InstanceState, merge bool) (*entity, error) {
	pk, err := partitionKeyFor(st.InstanceID)
	if err != nil {
		return nil, err
	}
	e := &entity{pk: pk, rk: ""}
	e.str(colName, st.Name)
	e.str(colVersion, st.Version)
	e.str(colExecutionID, st.ExecutionID)
	for _, c := range []struct{ col, blobCol, v string }{{colInput, colInputBlobName, st.Input}, {colOutput, colOutputBlobName, st.Output}} {
		switch {
		case c.v != "" || !merge:
			e.optStr(c.col, c.v)
		default:
			e.str(c.col, "")
			e.str(c.blobCol, "")
		}
	}
	customStatus := st.CustomStatus
	if customStatus == "" {
		customStatus = "null" // what Durable Task writes when there is none
	}
	e.str(colCustomStatus, customStatus)
	e.time(colCreatedTime, st.CreatedTime)
	e.time(colLastUpdatedTime, st.LastUpdatedTime)
	e.time(colCompletedTime, st.CompletedTime)
	e.str(colRuntimeStatus, st.Status.String())
	e.time(colScheduledStartTime, st.ScheduledStartTime)
	e.int32(colGeneration, st.Generation)
	e.str(colTags, tagsJSON(st.Tags))
	e.str(colTaskHubName, s.hub)
	e.int32(colHistoryPosition, int32(st.HistoryPosition))
	return e, nil
}

// instanceFromRow decodes an Instances row. A CompletedTime is kept only
// with a final status: merges leave the previous execution's in place (as
// Durable Task's do). An empty Input or Output with a {Column}BlobName
// column (a Durable Task client's large value, see adoptBlobNames) is
// returned as "".
func instanceFromRow(r members) (backend.InstanceState, error) {
	var st backend.InstanceState
	pk, err := r.str("PartitionKey")
	if err != nil {
		return st, err
	}
	if st.InstanceID, err = unescapeKey(pk); err != nil {
		return st, err
	}
	fail := func(err error) (backend.InstanceState, error) {
		return st, fmt.Errorf("azurestorage: Instances row of %s: %w", st.InstanceID, err)
	}
	for _, f := range []struct {
		col string
		dst *string
	}{{colName, &st.Name}, {colVersion, &st.Version}, {colExecutionID, &st.ExecutionID}, {colInput, &st.Input},
		{colOutput, &st.Output}, {colCustomStatus, &st.CustomStatus}} {
		if *f.dst, err = r.str(f.col); err != nil {
			return fail(err)
		}
	}
	if st.CustomStatus == "null" {
		st.CustomStatus = ""
	}
	for _, f := range []struct {
		col string
		dst *time.Time
	}{{colCreatedTime, &st.CreatedTime}, {colLastUpdatedTime, &st.LastUpdatedTime},
		{colCompletedTime, &st.CompletedTime}, {colScheduledStartTime, &st.ScheduledStartTime}} {
		if *f.dst, err = r.time(f.col); err != nil {
			return fail(err)
		}
	}
	status, err := r.str(colRuntimeStatus)
	if err != nil {
		return fail(err)
	}
	if status != "" {
		if st.Status, err = history.ParseStatus(status); err != nil {
			return fail(err)
		}
	}
	if !st.Status.IsTerminal() {
		st.CompletedTime = time.Time{}
	}
	if st.Generation, err = r.int32(colGeneration); err != nil {
		return fail(err)
	}
	if st.Tags, err = r.stringMap(colTags); err != nil {
		return fail(err)
	}
	pos, err := r.int32(colHistoryPosition)
	if err != nil {
		return fail(err)
	}
	st.HistoryPosition = int(pos)
	st.ETag = r.etag()
	return st, nil
}

// adoptBlobNames takes the values a Durable Task client stored in blobs
// when it created the row (Input = "" and InputBlobName = the blob's name
// in the large-message container, likewise for Output): the column gets the
// blob's URL, which restoreInstances then resolves like our own.
func (s *Store) adoptBlobNames(r members, st *backend.InstanceState) error {
	for _, c := range []struct {
		col string
		dst *string
	}{{colInputBlobName, &st.Input}, {colOutputBlobName, &st.Output}} {
		name, err := r.str(c.col)
		if err != nil {
			return fmt.Errorf("azurestorage: Instances row of %s: %w", st.InstanceID, err)
		}
		if name != "" && *c.dst == "" {
			*c.dst = s.blobs.URL(name)
		}
	}
	return nil
}

// GetInstance reads an instance's status row: one point read. Input is
// dropped unless withInput.
func (s *Store) GetInstance(ctx context.Context, instanceID string, withInput bool) (backend.InstanceState, error) {
	pk, err := partitionKeyFor(instanceID)
	if err != nil {
		return backend.InstanceState{}, err
	}
	resp, err := s.instances.GetEntity(ctx, pk, "", nil)
	if err != nil {
		return backend.InstanceState{}, tableError("get instance "+instanceID, err)
	}
	r, err := parseRow(resp.Value)
	if err != nil {
		return backend.InstanceState{}, err
	}
	st, err := instanceFromRow(r)
	if err != nil {
		return backend.InstanceState{}, err
	}
	if err := s.adoptBlobNames(r, &st); err != nil {
		return backend.InstanceState{}, err
	}
	st.ETag = string(resp.ETag)
	if !withInput {
		st.Input = ""
	}
	rows := []backend.InstanceState{st}
	if err := s.restoreInstances(ctx, rows, withInput); err != nil {
		return backend.InstanceState{}, err
	}
	return rows[0], nil
}

// prepareInstanceRow renders an Instances row, uploading its large values
// to blobs first, and returns the entity's JSON.
func (s *Store) prepareInstanceRow(ctx context.Context, op string, st *backend.InstanceState, merge bool) ([]byte, error) {
	e, err := s.instanceEntity(st, merge)
	if err != nil {
		return nil, err
	}
	blobs := s.offloadInstanceRow(e, st.ExecutionID)
	data, err := e.marshal()
	if err != nil {
		return nil, fmt.Errorf("azurestorage: %s instance %s: %w", op, st.InstanceID, err)
	}
	if err := s.uploadInstanceBlobs(ctx, blobs); err != nil {
		return nil, fmt.Errorf("azurestorage: %s instance %s: %w", op, st.InstanceID, err)
	}
	return data, nil
}

// CreateInstance inserts a status row (ErrExists if present) and returns
// its ETag. Input, Output and CustomStatus above 60 KiB of UTF-16 are
// stored in blobs and the row holds their URLs.
func (s *Store) CreateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	data, err := s.prepareInstanceRow(ctx, "create", &st, false)
	if err != nil {
		return "", err
	}
	resp, err := s.instances.AddEntity(ctx, data, nil)
	if err != nil {
		return "", tableError("create instance "+st.InstanceID, err)
	}
	return string(resp.ETag), nil
}

// UpdateInstance replaces the status row if its ETag still equals st.ETag
// (ErrConflict otherwise, also when the row is gone), or upserts it
// unconditionally when st.ETag is "". It returns the new ETag. Large values
// go to blobs as in CreateInstance; a value this Store has already stored
// for the execution reuses its blob. Columns we do not model are dropped,
// as by a Durable Task client's start.
func (s *Store) UpdateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	return s.writeInstance(ctx, st, aztables.UpdateModeReplace)
}

// MergeInstance is UpdateInstance as a Merge (an InsertOrMerge when st.ETag
// is ""): the columns we do not model keep their stored values, as with
// Durable Task's checkpoints.
func (s *Store) MergeInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	return s.writeInstance(ctx, st, aztables.UpdateModeMerge)
}

func (s *Store) writeInstance(ctx context.Context, st backend.InstanceState, mode aztables.UpdateMode) (string, error) {
	op := "update"
	if mode == aztables.UpdateModeMerge {
		op = "merge"
	}
	data, err := s.prepareInstanceRow(ctx, op, &st, mode == aztables.UpdateModeMerge)
	if err != nil {
		return "", err
	}
	if st.ETag == "" {
		resp, err := s.instances.UpsertEntity(ctx, data, &aztables.UpsertEntityOptions{UpdateMode: mode})
		if err != nil {
			return "", tableError("upsert instance "+st.InstanceID, err)
		}
		return string(resp.ETag), nil
	}
	etag := azcore.ETag(st.ETag)
	resp, err := s.instances.UpdateEntity(ctx, data, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: mode})
	if err != nil {
		if status, code, ok := responseError(err); ok && status == http.StatusNotFound {
			return "", fmt.Errorf("azurestorage: %s instance %s: the row is gone: %w (%w): HTTP %d %s",
				op, st.InstanceID, backend.ErrConflict, backend.ErrNotFound, status, code)
		}
		return "", tableError(op+" instance "+st.InstanceID, err)
	}
	return string(resp.ETag), nil
}

// QueryInstances lists Instances rows matching q, one page (one request) at
// a time. The service may return fewer rows than the page size, even none,
// before the last page; the continuation is "" only on the last page.
func (s *Store) QueryInstances(ctx context.Context, q backend.InstanceQuery) ([]backend.InstanceState, string, error) {
	opts := &aztables.ListEntitiesOptions{}
	if filter := instanceFilter(&q); filter != "" {
		opts.Filter = &filter
	}
	top := q.PageSize
	if top <= 0 {
		top = defaultPageSize
	}
	top = min(top, maxPageSize)
	opts.Top = &top
	if !q.WithInput {
		cols := selectWithoutInput
		opts.Select = &cols
	}
	if q.Continuation != "" {
		pk, rk, err := parseContinuation(q.Continuation)
		if err != nil {
			return nil, "", err
		}
		if pk != "" {
			opts.NextPartitionKey = &pk
		}
		if rk != "" {
			opts.NextRowKey = &rk
		}
	}
	page, err := s.instances.NewListEntitiesPager(opts).NextPage(ctx)
	if err != nil {
		return nil, "", tableError("query instances", err)
	}
	out := make([]backend.InstanceState, 0, len(page.Entities))
	for _, data := range page.Entities {
		r, err := parseRow(data)
		if err != nil {
			return nil, "", err
		}
		st, err := instanceFromRow(r)
		if err != nil {
			return nil, "", err
		}
		if err := s.adoptBlobNames(r, &st); err != nil {
			return nil, "", err
		}
		if !q.WithInput {
			st.Input = "" // its blob name is not selected, but be sure
		}
		if q.InstanceIDPrefix != "" && !strings.HasPrefix(st.InstanceID, q.InstanceIDPrefix) {
			continue // only when the prefix has no exclusive upper bound
		}
		out = append(out, st)
	}
	if err := s.restoreInstances(ctx, out, q.WithInput); err != nil {
		return nil, "", fmt.Errorf("azurestorage: query instances: %w", err)
	}
	return out, formatContinuation(page.NextPartitionKey, page.NextRowKey), nil
}

// instanceFilter builds the OData filter of q (Durable Task's query
// conditions).
func instanceFilter(q *backend.InstanceQuery) string {
	var clauses []string
	if len(q.Statuses) > 0 {
		var or []string
		for _, st := range q.Statuses {
			or = append(or, colRuntimeStatus+" eq "+odataString(st.String()))
		}
		clauses = append(clauses, "("+strings.Join(or, " or ")+")")
	}
	if !q.CreatedFrom.IsZero() {
		clauses = append(clauses, "("+colCreatedTime+" ge datetime'"+formatTime(q.CreatedFrom)+"')")
	}
	if !q.CreatedTo.IsZero() {
		clauses = append(clauses, "("+colCreatedTime+" le datetime'"+formatTime(q.CreatedTo)+"')")
	}
	if q.InstanceIDPrefix != "" {
		lower := escapeKey(q.InstanceIDPrefix)
		clause := "PartitionKey ge " + odataString(lower)
		if upper, ok := prefixUpperBound(lower); ok {
			clause += " and PartitionKey lt " + odataString(upper)
		}
		clauses = append(clauses, "("+clause+")")
	}
	if q.ExcludeEntities {
		// Entity IDs start with '@' (U+0040), and nothing else sorts
		// between '@' and 'A'.
		clauses = append(clauses, "(PartitionKey lt '@' or PartitionKey ge 'A')")
	}
	return strings.Join(clauses, " and ")
}

// prefixUpperBound returns the smallest string above every string that
// starts with prefix, by incrementing its last character.
func prefixUpperBound(prefix string) (string, bool) {
	r, size := utf8.DecodeLastRuneInString(prefix)
	next := r + 1
	if r == utf8.RuneError || next == 0xD800 || next > 0xFFFF {
		return "", false // keep to the BMP, where code point and UTF-16 order agree
	}
	return prefix[:len(prefix)-size] + string(next), true
}

// formatContinuation packs the service's continuation keys into one opaque
// token, "" when there are none.
func formatContinuation(pk, rk *string) string {
	if (pk == nil || *pk == "") && (rk == nil || *rk == "") {
		return ""
	}
	var keys [2]string
	if pk != nil {
		keys[0] = *pk
	}
	if rk != nil {
		keys[1] = *rk
	}
	data, _ := json.Marshal(keys)
	return base64.RawURLEncoding.EncodeToString(data)
}

func parseContinuation(token string) (pk, rk string, err error) {
	data, err := base64.RawURLEncoding.DecodeString(token)
	var keys [2]string
	if err == nil {
		err = json.Unmarshal(data, &keys)
	}
	if err != nil {
		return "", "", fmt.Errorf("azurestorage: invalid continuation token %q", token)
	}
	return keys[0], keys[1], nil
}

// PurgeInstance deletes an instance's history rows (one query, then
// transactions of 100 deletes), its status row and its large-payload blobs
// (one listing of the prefix "{escaped instance ID}/", then one delete per
// blob). ErrNotFound when none of them existed.
func (s *Store) PurgeInstance(ctx context.Context, instanceID string) error {
	pk, err := partitionKeyFor(instanceID)
	if err != nil {
		return err
	}
	rows, err := s.queryPartition(ctx, s.history, pk, "PartitionKey,RowKey")
	if err != nil {
		return tableError("purge history of "+instanceID, err)
	}
	for start := 0; start < len(rows); start += maxBatchOperations {
		batch := make([]batchOp, 0, maxBatchOperations)
		for _, r := range rows[start:min(start+maxBatchOperations, len(rows))] {
			rk, err := r.str("RowKey")
			if err != nil {
				return err
			}
			batch = append(batch, deleteOp(pk, rk))
		}
		if _, err := s.rest.submitBatch(ctx, s.HistoryTableName(), batch); err != nil {
			return fmt.Errorf("azurestorage: purge history of %s: %w", instanceID, err)
		}
	}
	found := len(rows) > 0
	switch _, err = s.instances.DeleteEntity(ctx, pk, "", nil); {
	case err == nil:
		found = true
	case !isStatus(err, http.StatusNotFound):
		return tableError("purge instance "+instanceID, err)
	}
	// Blobs go last, so that a purge that fails half-way can be repeated
	// and rows never point at deleted blobs.
	blobs, err := s.blobs.deletePrefix(ctx, blobPrefix(pk))
	s.blobRefs.forget(pk)
	if err != nil {
		return fmt.Errorf("azurestorage: purge instance %s: %w", instanceID, err)
	}
	if !found && blobs == 0 {
		return fmt.Errorf("azurestorage: purge instance %s: %w", instanceID, backend.ErrNotFound)
	}
	return nil
}
