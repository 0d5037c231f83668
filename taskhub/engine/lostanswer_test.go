package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// lostAnswers commits chosen writes and then reports an error, as a
// connection reset after the service committed would, or as the SDK's
// retry of a committed batch does (it meets the fence the batch moved).
type lostAnswers struct {
	backend.Backend
	mu      sync.Mutex
	calls   map[string]int
	every   map[string]int // operation → lose the answer of every n-th call
	lost    map[string]int
	errKind error
}

func (l *lostAnswers) lose(op string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[op]++
	if n := l.every[op]; n > 0 && l.calls[op]%n == 0 {
		l.lost[op]++
		return true
	}
	return false
}

func (l *lostAnswers) AppendHistory(ctx context.Context, id, exec string, from int, evs []history.Event, etag string) (string, error) {
	tag, err := l.Backend.AppendHistory(ctx, id, exec, from, evs, etag)
	if err == nil && l.lose("append") {
		return "", fmt.Errorf("append history of %s: %w (the answer to a committed batch was lost)", id, backend.ErrConflict)
	}
	return tag, err
}

func (l *lostAnswers) UpdateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	tag, err := l.Backend.UpdateInstance(ctx, st)
	if err == nil && l.lose("update") {
		return "", fmt.Errorf("update instance %s: connection reset by peer after the write", st.InstanceID)
	}
	return tag, err
}

func (l *lostAnswers) MergeInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	tag, err := l.Backend.MergeInstance(ctx, st)
	if err == nil && l.lose("update") {
		return "", fmt.Errorf("merge instance %s: connection reset by peer after the write", st.InstanceID)
	}
	return tag, err
}

func (l *lostAnswers) CreateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	tag, err := l.Backend.CreateInstance(ctx, st)
	if err == nil && st.Status != history.StatusPending && l.lose("create") {
		return "", fmt.Errorf("create instance %s: %w (the answer to a committed insert was lost)", st.InstanceID, backend.ErrExists)
	}
	return tag, err
}

// TestLostWriteAnswersAreReconciled loses the answers of committed history
// appends and row writes: every instance still completes, each step is
// recorded once, and the Instances row says exactly what history says. On
// the previous engine such instances stayed Running or Pending for ever.
func TestLostWriteAnswersAreReconciled(t *testing.T) {
	h := newHub(t)
	sub := durable.NewOrchestrator("Parent", func(ctx *durable.Context, _ any) ([]string, error) {
		return durable.CallSubOrchestrator[[]string](ctx, "Seq3", nil).Await()
	})
	la := &lostAnswers{Backend: h.store, calls: map[string]int{}, lost: map[string]int{},
		every: map[string]int{"append": 3, "update": 2, "create": 2}}
	_, c := h.start(engine.Options{Backend: la, MessageVisibility: 3 * time.Second}, seq3, sub, greet)
	ctx := context.Background()
	var ids []string
	for i := 0; i < 6; i++ {
		name := "Seq3"
		if i%3 == 2 {
			name = "Parent"
		}
		id, err := c.StartNew(ctx, name, client.StartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		st := wait(t, c, id)
		if st.Status != history.StatusCompleted || st.Output != `["Hi a","Hi b","Hi c"]` {
			t.Errorf("instance %s: %s %s", id, st.Status, st.Output)
			continue
		}
		hist, err := h.store.LoadHistory(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		var done *history.Event
		for i, ev := range hist.Events {
			switch ev.Type {
			case history.ExecutionStarted, history.ExecutionCompleted, history.TaskScheduled, history.SubOrchestrationInstanceCreated:
				seen[fmt.Sprintf("%s/%d", ev.Type, ev.EventID)]++
			case history.TaskCompleted, history.SubOrchestrationInstanceCompleted:
				seen[fmt.Sprintf("response/%d", ev.TaskScheduledID)]++
			}
			if ev.Type == history.ExecutionCompleted {
				done = &hist.Events[i]
			}
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("instance %s: %s recorded %d times", id, k, n)
			}
		}
		row, err := h.store.GetInstance(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		if row.ExecutionID != hist.ExecutionID || row.HistoryPosition != len(hist.Events) || done == nil ||
			!row.CompletedTime.Equal(done.Timestamp.Truncate(100*time.Nanosecond)) {
			t.Errorf("instance %s: row (execution %s, position %d, completed %v) disagrees with history (execution %s, %d events, completion %v)",
				id, row.ExecutionID, row.HistoryPosition, row.CompletedTime, hist.ExecutionID, len(hist.Events), done)
		}
	}
	la.mu.Lock()
	defer la.mu.Unlock()
	if la.lost["append"] == 0 || la.lost["update"] == 0 {
		t.Fatalf("no answer was lost: %v", la.lost)
	}
	t.Logf("answers lost: %v of calls %v", la.lost, la.calls)
}
