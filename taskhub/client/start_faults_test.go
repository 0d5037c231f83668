package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/enginetest"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestMain(m *testing.M) { azuritetest.Main(m) }

// rowFault is what happens to the Instances-row insert of one instance.
type rowFault struct {
	commit    bool  // the insert reaches storage before the error
	err       error // the error the client sees instead of the answer
	rival     bool  // another client's start of the same ID lands first
	readFails int   // then this many row reads fail
}

// rowFaults wraps the real store and, per instance ID, spoils the first
// Instances-row insert the way a flaky network does: the write may commit
// while its answer is lost.
type rowFaults struct {
	backend.Backend
	mu        sync.Mutex
	faults    map[string]rowFault
	creates   map[string]int
	readFails map[string]int
}

var errReset = errors.New("read tcp 127.0.0.1:10002: connection reset by peer")

func (f *rowFaults) CreateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	f.mu.Lock()
	f.creates[st.InstanceID]++
	fault, ok := f.faults[st.InstanceID]
	delete(f.faults, st.InstanceID)
	if ok {
		f.readFails[st.InstanceID] = fault.readFails
	}
	f.mu.Unlock()
	switch {
	case !ok:
		return f.Backend.CreateInstance(ctx, st)
	case fault.rival:
		rival := st
		rival.ExecutionID = "rival-execution"
		if _, err := f.Backend.CreateInstance(ctx, rival); err != nil {
			return "", err
		}
		return f.Backend.CreateInstance(ctx, st) // a real 409
	case fault.commit:
		if _, err := f.Backend.CreateInstance(ctx, st); err != nil {
			return "", err
		}
	}
	return "", fault.err
}

func (f *rowFaults) GetInstance(ctx context.Context, id string, withInput bool) (backend.InstanceState, error) {
	f.mu.Lock()
	failing := f.readFails[id] > 0
	if failing {
		f.readFails[id]--
	}
	f.mu.Unlock()
	if failing {
		return backend.InstanceState{}, fmt.Errorf("get instance %s: %w", id, errReset)
	}
	return f.Backend.GetInstance(ctx, id, withInput)
}

func (f *rowFaults) createCalls(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates[id]
}

var greet = durable.NewActivity("Greet", func(ctx context.Context, name string) (string, error) {
	return "Hi " + name, nil
})

var hello = durable.NewOrchestrator("Hello", func(ctx *durable.Context, name string) (string, error) {
	return greet.Call(ctx, name).Await()
})

// TestStartSettlesALostRowWrite starts instances whose Instances-row insert
// fails in the ways a flaky network makes it fail, from a client that hands
// the start to the engine in its process and from one that does not. A
// write that committed is a successful start whose instance completes once;
// only another client's row makes it a concurrent start; when nothing can be
// read the caller learns that the outcome is unknown and the start message
// stays, so the instance still runs if its row was written.
func TestStartSettlesALostRowWrite(t *testing.T) {
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: azuritetest.HubName(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.DeleteTaskHub(context.Background()) })
	f := &rowFaults{Backend: store, faults: map[string]rowFault{}, creates: map[string]int{}, readFails: map[string]int{}}
	eng, reg, local := enginetest.Start(t, engine.Options{Backend: f, MaxPollInterval: 200 * time.Millisecond,
		MessageVisibility: 5 * time.Second}, hello, greet)
	clients := map[string]*client.Client{"local": local, "remote": client.New(f, reg, nil)}

	tests := []struct {
		name    string
		fault   rowFault
		wantErr error // nil: the start succeeds and the instance completes
		creates int   // inserts the client makes
		runs    bool  // for a failed start: whether the instance runs anyway
	}{
		{name: "committed, answer lost as 409", fault: rowFault{commit: true, err: fmt.Errorf("create instance: %w: HTTP 409 EntityAlreadyExists", backend.ErrExists)}, creates: 1},
		{name: "committed, answer lost as 412", fault: rowFault{commit: true, err: fmt.Errorf("create instance: %w: HTTP 412", backend.ErrConflict)}, creates: 1},
		{name: "committed, connection reset", fault: rowFault{commit: true, err: errReset}, creates: 1},
		{name: "not committed, 503", fault: rowFault{err: errors.New("HTTP 503 ServerBusy")}, creates: 2},
		{name: "another client's start won", fault: rowFault{rival: true}, wantErr: client.ErrInstanceExists, creates: 1},
		{name: "committed, then reads fail too", fault: rowFault{commit: true, err: errReset, readFails: 1}, wantErr: client.ErrStartOutcomeUnknown, creates: 1, runs: true},
		{name: "not committed, then reads fail too", fault: rowFault{err: errReset, readFails: 1}, wantErr: client.ErrStartOutcomeUnknown, creates: 1},
	}
	for i, tc := range tests {
		for _, mode := range []string{"local", "remote"} {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				c := clients[mode]
				id := fmt.Sprintf("lost-row-%d-%s", i, mode)
				if mode == "local" {
					waitOwned(t, eng, id)
				}
				f.mu.Lock()
				f.faults[id] = tc.fault
				f.mu.Unlock()

				got, err := c.StartNew(context.Background(), "Hello", client.StartOptions{InstanceID: id, Input: "Ann"})
				if n := f.createCalls(id); n != tc.creates {
					t.Errorf("%d row inserts, want %d", n, tc.creates)
				}
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), id) {
						t.Fatalf("StartNew = %q, %v; want an error wrapping %v that names the instance", got, err, tc.wantErr)
					}
					checkFailedStart(t, c, id, tc.fault, tc.runs)
					return
				}
				if err != nil || got != id {
					t.Fatalf("StartNew = %q, %v; want a successful start of %s", got, err, id)
				}
				checkCompletedOnce(t, c, id)
			})
		}
	}
}

// waitOwned waits until the engine owns the partition of id, so that the
// local client hands its start over in memory.
func waitOwned(t *testing.T, eng *engine.Engine, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !eng.OwnsPartitionOf(id) {
		if time.Now().After(deadline) {
			t.Fatalf("the engine never owned the partition of %s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkCompletedOnce waits for id and checks its output and that history
// holds one execution.
func checkCompletedOnce(t *testing.T, c *client.Client, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.WaitForCompletion(ctx, id, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	if st.Status != history.StatusCompleted || st.Output != `"Hi Ann"` {
		t.Fatalf("%s: %s %s", id, st.Status, st.Output)
	}
	events, err := c.GetHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	starts, ends := 0, 0
	for _, ev := range events {
		switch ev.Type {
		case history.ExecutionStarted:
			starts++
			if ev.Instance.ExecutionID != st.ExecutionID {
				t.Errorf("history starts execution %s, the row names %s", ev.Instance.ExecutionID, st.ExecutionID)
			}
		case history.ExecutionCompleted:
			ends++
		}
	}
	if starts != 1 || ends != 1 {
		t.Fatalf("%s: %d ExecutionStarted and %d ExecutionCompleted in history, want 1 each", id, starts, ends)
	}
}

// checkFailedStart checks what a failed start left: a rival's row untouched;
// a committed row whose start runs anyway; or nothing at all.
func checkFailedStart(t *testing.T, c *client.Client, id string, fault rowFault, runs bool) {
	t.Helper()
	switch {
	case fault.rival:
		st, err := c.GetStatus(context.Background(), id, false)
		if err != nil || st.ExecutionID != "rival-execution" || st.Status != history.StatusPending {
			t.Fatalf("the rival's row: %+v, %v", st, err)
		}
	case runs:
		checkCompletedOnce(t, c, id)
	default:
		if _, err := c.GetStatus(context.Background(), id, false); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("status of a start that never wrote its row: %v, want ErrNotFound", err)
		}
	}
}
