// Package invariants checks, after a fault test, that a task hub in Azure
// Storage is in the state a correct engine leaves behind: every instance has
// the expected outcome, its history records each execution, event and
// response exactly once, its Instances row says what its history says, no
// finished row was written again, and every queue of the hub is empty.
//
// It reads storage directly (the Azure SDK and package azurestorage), never
// through the app under test, so a test can use it while the app runs and
// after it has been killed.
//
// Use: create a Checker, call Observe (or WaitFinished) while polling for the
// instances to finish, so that the Checker learns each finished row's ETag
// the first time it sees it, then call Check.
package invariants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/internal/rawstorage"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Defaults of Options.
const (
	DefaultDrainTimeout = 30 * time.Second
	DefaultPollInterval = 200 * time.Millisecond
)

// sentinelRowKey is the RowKey of the History row that fences writers; it is
// not an event.
const sentinelRowKey = "sentinel"

// Want is what the caller expects of an instance when the run is over.
type Want struct {
	// Status is the expected runtime status, e.g. history.StatusCompleted.
	Status history.OrchestrationStatus
	// Output is the expected output as stored: JSON text, compared byte for
	// byte ("ErrorType: message" for a failed instance).
	Output string
	// EntityState is, for an entity (an instance ID "@name@key"), its
	// expected state as JSON text, compared byte for byte; Status and
	// Output are then not used (an entity's executions never complete).
	// The entity must also be quiet: no request queued, no lock held.
	EntityState string
}

// Options configures a Checker.
type Options struct {
	// ConnectionString is the storage account of the hub (not a proxy in
	// front of it).
	ConnectionString string
	// HubName is the task hub to check.
	HubName string
	// PartitionCount is the hub's number of control queues; 0 means
	// azurestorage.DefaultPartitionCount.
	PartitionCount int
	// DrainTimeout bounds how long Check waits for the queues to become
	// empty (messages whose deletion is in flight); 0 means
	// DefaultDrainTimeout.
	DrainTimeout time.Duration
	// PollInterval is the pause between two looks at the queues in Check
	// and at the Instances table in WaitFinished; 0 means
	// DefaultPollInterval.
	PollInterval time.Duration
}

// Rule names the invariant a Violation breaks.
type Rule string

// The invariants.
const (
	// RuleOutcome: the instance's status or output is not the expected one.
	RuleOutcome Rule = "outcome"
	// RuleExecution: not exactly one ExecutionStarted and (for a finished
	// instance) one ExecutionCompleted, or an ExecutionStarted of another
	// execution.
	RuleExecution Rule = "execution"
	// RuleDuplicate: an event or a response is recorded twice.
	RuleDuplicate Rule = "duplicate"
	// RuleOrphan: a response names no scheduling event of its kind.
	RuleOrphan Rule = "orphan"
	// RuleShape: history rows with a gap, or events after the completion.
	RuleShape Rule = "shape"
	// RuleRow: the Instances row disagrees with history.
	RuleRow Rule = "row"
	// RuleRewritten: a row seen finished was written again afterwards.
	RuleRewritten Rule = "rewritten"
	// RuleQueue: a control or work-item queue still holds messages.
	RuleQueue Rule = "queue"
)

// Violation is one broken invariant.
type Violation struct {
	// Instance is the instance concerned; "" for the hub as a whole.
	Instance string
	// Rule is the invariant broken.
	Rule Rule
	// Detail says what was found, with the values involved.
	Detail string
}

// String renders v on one line: "instance <id>: <rule>: <detail>".
func (v Violation) String() string {
	if v.Instance == "" {
		return fmt.Sprintf("hub: %s: %s", v.Rule, v.Detail)
	}
	return fmt.Sprintf("instance %s: %s: %s", v.Instance, v.Rule, v.Detail)
}

// Format renders violations one per line, for a test failure message.
func Format(vs []Violation) string {
	lines := make([]string, len(vs))
	for i, v := range vs {
		lines[i] = v.String()
	}
	return strings.Join(lines, "\n")
}

// Count returns how many violations break each rule.
func Count(vs []Violation) map[Rule]int {
	n := map[Rule]int{}
	for _, v := range vs {
		n[v.Rule]++
	}
	return n
}

// stamp is an Instances row as the Checker first saw it finished.
type stamp struct {
	etag      string
	timestamp string
	status    string
	completed string
}

// Checker checks the invariants of one task hub. It is safe for concurrent
// use.
type Checker struct {
	store      *azurestorage.Store
	history    *aztables.Client
	instances  *aztables.Client
	queues     []*azqueue.QueueClient
	queueNames []string
	drain      time.Duration
	poll       time.Duration

	mu       sync.Mutex
	finished map[string]stamp // instance ID → row first seen finished
}

// New returns a Checker for the hub in opts. It makes no storage calls.
func New(opts Options) (*Checker, error) {
	store, err := azurestorage.New(azurestorage.Options{
		ConnectionString: opts.ConnectionString, HubName: opts.HubName, PartitionCount: opts.PartitionCount,
	})
	if err != nil {
		return nil, fmt.Errorf("invariants: %w", err)
	}
	tables, err := rawstorage.Tables(opts.ConnectionString)
	if err != nil {
		return nil, fmt.Errorf("invariants: %w", err)
	}
	queues, err := rawstorage.Queues(opts.ConnectionString)
	if err != nil {
		return nil, fmt.Errorf("invariants: %w", err)
	}
	c := &Checker{
		store:     store,
		history:   tables.NewClient(store.HistoryTableName()),
		instances: tables.NewClient(store.InstancesTableName()),
		drain:     opts.DrainTimeout,
		poll:      opts.PollInterval,
		finished:  map[string]stamp{},
	}
	if c.drain <= 0 {
		c.drain = DefaultDrainTimeout
	}
	if c.poll <= 0 {
		c.poll = DefaultPollInterval
	}
	for i := range store.PartitionCount() {
		c.queueNames = append(c.queueNames, store.ControlQueueName(i))
	}
	c.queueNames = append(c.queueNames, store.WorkItemQueueName())
	for _, name := range c.queueNames {
		c.queues = append(c.queues, queues.NewQueueClient(name))
	}
	return c, nil
}

// rawRow is the part of a table row the Checker reads without decoding it
// through azurestorage.
type rawRow struct {
	PartitionKey   string
	RowKey         string
	Timestamp      string
	ETag           string `json:"odata.etag"`
	RuntimeStatus  string
	CompletedTime  string
	ExecutionID    string `json:"ExecutionId"`
	EventType      string
	LastUpdateTime string `json:"LastUpdatedTime"`
}

// listRows reads every row of table with the given columns (all pages).
func listRows(ctx context.Context, table *aztables.Client, columns string) ([]rawRow, error) {
	pager := table.NewListEntitiesPager(&aztables.ListEntitiesOptions{Select: &columns})
	var rows []rawRow
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, data := range page.Entities {
			var r rawRow
			if err := json.Unmarshal(data, &r); err != nil {
				return nil, fmt.Errorf("malformed entity %s: %w", data, err)
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// keys maps each instance ID to its table PartitionKey.
func keys(ids []string) (map[string]string, error) {
	m := make(map[string]string, len(ids))
	for _, id := range ids {
		pk, err := azurestorage.TableKey(id)
		if err != nil {
			return nil, fmt.Errorf("invariants: instance %q: %w", id, err)
		}
		m[id] = pk
	}
	return m, nil
}

// Observe reads the hub's Instances rows (one listing) and, for each of ids
// whose row is finished (Completed, Failed, Canceled or Terminated) and not
// seen finished before, records the row's ETag and Timestamp, which Check
// later compares with the row as it is then. It returns how many of ids are
// finished now and the status of each (absent when there is no row). Call
// it while waiting for instances to finish.
func (c *Checker) Observe(ctx context.Context, ids []string) (int, map[string]string, error) {
	pks, err := keys(ids)
	if err != nil {
		return 0, nil, err
	}
	rows, err := listRows(ctx, c.instances, "PartitionKey,RowKey,Timestamp,RuntimeStatus,CompletedTime")
	if err != nil {
		return 0, nil, fmt.Errorf("invariants: list %s: %w", c.store.InstancesTableName(), err)
	}
	byKey := make(map[string]rawRow, len(rows))
	for _, r := range rows {
		byKey[r.PartitionKey] = r
	}
	statuses := make(map[string]string, len(ids))
	done := 0
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		r, ok := byKey[pks[id]]
		if !ok {
			continue
		}
		statuses[id] = r.RuntimeStatus
		if !isFinished(r.RuntimeStatus) {
			continue
		}
		done++
		if _, seen := c.finished[id]; !seen {
			c.finished[id] = stamp{etag: r.ETag, timestamp: r.Timestamp, status: r.RuntimeStatus, completed: r.CompletedTime}
		}
	}
	return done, statuses, nil
}

// WaitFinished calls Observe every poll interval until all of ids are
// finished or ctx ends; then it returns an error that names the unfinished
// instances with their last status.
func (c *Checker) WaitFinished(ctx context.Context, ids []string) error {
	for {
		done, statuses, err := c.Observe(ctx, ids)
		if err == nil && done == len(ids) {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("invariants: wait for %d instances: %w (last error: %w)", len(ids), ctx.Err(), err)
			}
			var open []string
			for _, id := range ids {
				if s, ok := statuses[id]; !ok {
					open = append(open, id+" (no row)")
				} else if !isFinished(s) {
					open = append(open, id+" ("+s+")")
				}
			}
			return fmt.Errorf("invariants: %d of %d instances did not finish: %s: %w",
				len(open), len(ids), strings.Join(open, ", "), ctx.Err())
		case <-time.After(c.poll):
		}
	}
}

func isFinished(status string) bool {
	s, err := history.ParseStatus(status)
	return err == nil && s.IsTerminal()
}

// Check verifies every invariant for ids, with want giving the expected
// outcome of each, and returns the violations found (nil when there are
// none). It first waits, up to the drain timeout, for the hub's queues to
// become empty. The error is for storage calls that failed, not for
// violations.
func (c *Checker) Check(ctx context.Context, ids []string, want func(instanceID string) Want) ([]Violation, error) {
	vs, err := c.checkQueues(ctx)
	if err != nil {
		return nil, err
	}
	pks, err := keys(ids)
	if err != nil {
		return nil, err
	}
	rows, err := listRows(ctx, c.history, "PartitionKey,RowKey,ExecutionId,EventType")
	if err != nil {
		return nil, fmt.Errorf("invariants: list %s: %w", c.store.HistoryTableName(), err)
	}
	rawByKey := map[string][]rawRow{}
	for _, r := range rows {
		rawByKey[r.PartitionKey] = append(rawByKey[r.PartitionKey], r)
	}
	for _, id := range ids {
		ivs, err := c.checkInstance(ctx, id, pks[id], rawByKey[pks[id]], want(id))
		if err != nil {
			return nil, err
		}
		vs = append(vs, ivs...)
	}
	return vs, nil
}

// checkQueues waits until every queue of the hub is empty, by its
// approximate message count (which includes hidden messages) and by a peek,
// or until the drain timeout; then it reports the queues still holding
// messages.
func (c *Checker) checkQueues(ctx context.Context) ([]Violation, error) {
	deadline := time.Now().Add(c.drain)
	for {
		var vs []Violation
		for i, q := range c.queues {
			v, err := c.queueState(ctx, c.queueNames[i], q)
			if err != nil {
				return nil, err
			}
			if v != nil {
				vs = append(vs, *v)
			}
		}
		if len(vs) == 0 || !time.Now().Before(deadline) {
			return vs, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("invariants: wait for empty queues: %w", ctx.Err())
		case <-time.After(c.poll):
		}
	}
}

// queueState returns a violation if the queue holds messages.
func (c *Checker) queueState(ctx context.Context, name string, q *azqueue.QueueClient) (*Violation, error) {
	props, err := q.GetProperties(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("invariants: properties of queue %s: %w", name, err)
	}
	peek, err := q.PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to32(32)})
	if err != nil {
		return nil, fmt.Errorf("invariants: peek queue %s: %w", name, err)
	}
	count := int32(0)
	if props.ApproximateMessagesCount != nil {
		count = *props.ApproximateMessagesCount
	}
	if count == 0 && len(peek.Messages) == 0 {
		return nil, nil
	}
	var samples []string
	for _, m := range peek.Messages {
		if m.MessageText != nil && len(samples) < 3 {
			samples = append(samples, truncate(*m.MessageText, 300))
		}
	}
	detail := fmt.Sprintf("queue %s holds ~%d messages (%d visible)", name, count, len(peek.Messages))
	if len(samples) > 0 {
		detail += "; first visible: " + strings.Join(samples, " | ")
	}
	return &Violation{Rule: RuleQueue, Detail: detail}, nil
}

func to32(n int32) *int32 { return &n }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// schedulingResponse maps each response type to the scheduling event type
// it answers.
var schedulingResponse = map[history.EventType]history.EventType{
	history.TaskCompleted:                     history.TaskScheduled,
	history.TaskFailed:                        history.TaskScheduled,
	history.SubOrchestrationInstanceCompleted: history.SubOrchestrationInstanceCreated,
	history.SubOrchestrationInstanceFailed:    history.SubOrchestrationInstanceCreated,
	history.TimerFired:                        history.TimerCreated,
}

// isScheduling reports whether events of type t carry the EventID of an
// orchestrator action (unique within an execution).
func isScheduling(t history.EventType) bool {
	switch t {
	case history.TaskScheduled, history.TimerCreated, history.SubOrchestrationInstanceCreated, history.EventSent:
		return true
	}
	return false
}

// checkInstance checks one instance: its history against itself, its row
// against its history and against want, and its row against the stamp
// taken when it was first seen finished.
func (c *Checker) checkInstance(ctx context.Context, id, pk string, raw []rawRow, want Want) ([]Violation, error) {
	var vs []Violation
	add := func(rule Rule, format string, args ...any) {
		vs = append(vs, Violation{Instance: id, Rule: rule, Detail: fmt.Sprintf(format, args...)})
	}
	h, err := c.store.LoadHistory(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("invariants: %w", err)
	}
	row, rowErr := c.store.GetInstance(ctx, id, true)
	if rowErr != nil && !errors.Is(rowErr, backend.ErrNotFound) {
		return nil, fmt.Errorf("invariants: %w", rowErr)
	}
	hasRow := rowErr == nil

	entity := history.IsEntityInstanceID(id)
	switch {
	case entity && !hasRow:
		add(RuleOutcome, "no Instances row; want the entity state %s", show(want.EntityState))
	case entity:
		vs = append(vs, entityOutcome(id, &row, want)...)
	case !hasRow:
		add(RuleOutcome, "no Instances row; want %s %s", want.Status, show(want.Output))
	case row.Status != want.Status || row.Output != want.Output:
		add(RuleOutcome, "row says %s %s; want %s %s", row.Status, show(row.Output), want.Status, show(want.Output))
	}
	if h.ExecutionID == "" {
		add(RuleExecution, "no history")
		return append(vs, c.checkRewritten(ctx, id, pk)...), nil
	}

	// The raw rows of the current execution must be positions 0..n-1, all
	// of them loaded: a row past a gap is an event no reader will see.
	var positions []string
	for _, r := range raw {
		if r.RowKey != sentinelRowKey && r.ExecutionID == h.ExecutionID {
			positions = append(positions, r.RowKey)
		}
	}
	slices.Sort(positions)
	for i, rk := range positions {
		if rk != fmt.Sprintf("%016X", i) {
			add(RuleShape, "history rows of execution %s are not contiguous: row %d is %s (rows %v)", h.ExecutionID, i, rk, positions)
			break
		}
	}
	if len(positions) != len(h.Events) {
		add(RuleShape, "execution %s has %d history rows but %d load in order", h.ExecutionID, len(positions), len(h.Events))
	}

	var starts, completions []int
	scheduled := map[int32]int{} // EventID → position
	responded := map[int32]int{} // TaskScheduledId/TimerId → position
	raised := map[string]int{}   // name, input and timestamp of an EventRaised → position
	for i, ev := range h.Events {
		switch {
		case ev.Type == history.ExecutionStarted:
			starts = append(starts, i)
		case ev.Type.EndsExecution():
			completions = append(completions, i)
		case isScheduling(ev.Type):
			if j, dup := scheduled[ev.EventID]; dup {
				add(RuleDuplicate, "EventID %d is used by %s at %d and %s at %d", ev.EventID, h.Events[j].Type, j, ev.Type, i)
			} else {
				scheduled[ev.EventID] = i
			}
		case ev.Type == history.EventRaised:
			key := ev.Name + "\x00" + ev.Input + "\x00" + ev.Timestamp.UTC().Format(time.RFC3339Nano)
			if j, dup := raised[key]; dup {
				add(RuleDuplicate, "EventRaised %q with the same input and timestamp at %d and %d", ev.Name, j, i)
			} else {
				raised[key] = i
			}
		}
		if _, ok := schedulingResponse[ev.Type]; ok {
			ref := ev.TaskScheduledID
			if ev.Type == history.TimerFired {
				ref = ev.TimerID
			}
			if j, dup := responded[ref]; dup {
				add(RuleDuplicate, "two responses to EventID %d: %s at %d (%s) and %s at %d (%s)", ref,
					h.Events[j].Type, j, stampTime(h.Events[j].Timestamp), ev.Type, i, stampTime(ev.Timestamp))
			} else {
				responded[ref] = i
			}
		}
	}
	for ref, i := range responded {
		ev := h.Events[i]
		j, ok := scheduled[ref]
		if !ok || h.Events[j].Type != schedulingResponse[ev.Type] {
			add(RuleOrphan, "%s at %d answers EventID %d, which has no %s", ev.Type, i, ref, schedulingResponse[ev.Type])
		}
	}
	if len(starts) != 1 {
		add(RuleExecution, "%d ExecutionStarted events (at %v), want 1", len(starts), starts)
	}
	if len(completions) > 1 || !entity && want.Status.IsTerminal() && len(completions) != 1 || entity && len(completions) > 0 {
		add(RuleExecution, "%d ExecutionCompleted events (at %v), want 1", len(completions), completions)
	}
	var start, completion *history.Event
	if len(starts) > 0 {
		start = &h.Events[starts[0]]
		if start.Instance.ExecutionID != h.ExecutionID {
			add(RuleExecution, "ExecutionStarted names execution %s, the sentinel %s", start.Instance.ExecutionID, h.ExecutionID)
		}
	}
	if len(completions) > 0 {
		last := completions[len(completions)-1]
		completion = &h.Events[last]
		for i := last + 1; i < len(h.Events); i++ {
			if t := h.Events[i].Type; t != history.OrchestratorCompleted {
				add(RuleShape, "%s at %d follows the completion at %d", t, i, last)
			}
		}
	}

	if hasRow {
		vs = append(vs, rowAgainstHistory(id, &row, h.ExecutionID, start, completion)...)
	}
	return append(vs, c.checkRewritten(ctx, id, pk)...), nil
}

// entityOutcome checks an entity's row: the state its scheduler state
// holds, no request queued or lock held, and the status column saying so.
func entityOutcome(id string, row *backend.InstanceState, want Want) []Violation {
	var vs []Violation
	add := func(rule Rule, format string, args ...any) {
		vs = append(vs, Violation{Instance: id, Rule: rule, Detail: fmt.Sprintf(format, args...)})
	}
	st, err := history.ParseEntitySchedulerState(row.Input)
	if err != nil {
		add(RuleRow, "the scheduler state %s cannot be read: %v", show(row.Input), err)
		return vs
	}
	if st.State != want.EntityState {
		add(RuleOutcome, "entity state %s, want %s", show(st.State), show(want.EntityState))
	}
	if len(st.Queue) > 0 || st.LockedBy != "" {
		add(RuleOutcome, "entity not quiet: %d requests queued, locked by %q", len(st.Queue), st.LockedBy)
	}
	if status, err := st.Status().Encode(); err != nil || row.CustomStatus != status {
		add(RuleRow, "CustomStatus %s, the scheduler state says %s", show(row.CustomStatus), show(status))
	}
	return vs
}

// rowAgainstHistory compares an Instances row with the history it must
// reflect.
func rowAgainstHistory(id string, row *backend.InstanceState, executionID string, start, completion *history.Event) []Violation {
	var vs []Violation
	add := func(format string, args ...any) {
		vs = append(vs, Violation{Instance: id, Rule: RuleRow, Detail: fmt.Sprintf(format, args...)})
	}
	if row.ExecutionID != executionID {
		add("ExecutionId %s, history %s", row.ExecutionID, executionID)
	}
	if start != nil {
		if row.Name != start.Name {
			add("Name %q, history %q", row.Name, start.Name)
		}
		if row.Version != start.Version {
			add("Version %q, history %q", row.Version, start.Version)
		}
		if row.Input != start.Input {
			add("Input %s, history %s", show(row.Input), show(start.Input))
		}
		if !row.CreatedTime.Equal(start.Timestamp) {
			add("CreatedTime %s, ExecutionStarted at %s", stampTime(row.CreatedTime), stampTime(start.Timestamp))
		}
	}
	if completion == nil {
		if row.Status.IsTerminal() {
			add("RuntimeStatus %s, but history has no completion", row.Status)
		}
		if !row.CompletedTime.IsZero() {
			add("CompletedTime %s set, but history has no completion", stampTime(row.CompletedTime))
		}
		return vs
	}
	output := completion.Result
	if completion.Status == history.StatusFailed && completion.Failure != nil {
		output = completion.Failure.String()
	}
	if row.Status != completion.Status {
		add("RuntimeStatus %s, history %s", row.Status, completion.Status)
	}
	if row.Output != output {
		add("Output %s, history %s", show(row.Output), show(output))
	}
	if row.CompletedTime.IsZero() {
		add("CompletedTime not set, history completed at %s", stampTime(completion.Timestamp))
	}
	return vs
}

// show renders a stored JSON value for a message; "" is null.
func show(s string) string {
	if s == "" {
		return "null"
	}
	return truncate(s, 200)
}

func stampTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// checkRewritten compares the row with the stamp taken when the instance
// was first seen finished.
func (c *Checker) checkRewritten(ctx context.Context, id, pk string) []Violation {
	c.mu.Lock()
	first, ok := c.finished[id]
	c.mu.Unlock()
	if !ok {
		return nil
	}
	resp, err := c.instances.GetEntity(ctx, pk, "", nil)
	if err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode == 404 {
			return []Violation{{Instance: id, Rule: RuleRewritten, Detail: fmt.Sprintf(
				"row seen %s (Timestamp %s) is gone", first.status, first.timestamp)}}
		}
		return []Violation{{Instance: id, Rule: RuleRewritten, Detail: "cannot read the row: " + err.Error()}}
	}
	var now rawRow
	if err := json.Unmarshal(resp.Value, &now); err != nil {
		return []Violation{{Instance: id, Rule: RuleRewritten, Detail: "malformed row: " + err.Error()}}
	}
	// The listing in Observe gives the ETag from the body's metadata; read
	// it from the same place here (the header carries the same value).
	etag := now.ETag
	if etag == "" {
		etag = string(resp.ETag)
	}
	if etag == first.etag && now.Timestamp == first.timestamp {
		return nil
	}
	return []Violation{{Instance: id, Rule: RuleRewritten, Detail: fmt.Sprintf(
		"row seen %s (CompletedTime %s, Timestamp %s) was written again: now %s (CompletedTime %s, LastUpdatedTime %s, Timestamp %s)",
		first.status, first.completed, first.timestamp, now.RuntimeStatus, now.CompletedTime, now.LastUpdateTime, now.Timestamp)}}
}
