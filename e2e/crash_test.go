package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// waitFile waits for a file the app creates, while the app is running.
func waitFile(t *testing.T, p *process, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		select {
		case <-p.done:
			t.Fatalf("app exited while waiting for %s", path)
		case <-deadline:
			t.Fatalf("%s did not appear within %v", path, timeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// crashRun is one run of the CrashTest orchestrator (steps one, two,
// three; step two blocks until released) in a first app process.
type crashRun struct {
	hub, dir, bin string
	env           []string
	p1            *process
	cs            checkStatus
}

// startCrashRun starts the app with extra settings and the instance, and
// waits until step two runs.
func startCrashRun(t *testing.T, note string, extra ...string) *crashRun {
	t.Helper()
	r := &crashRun{hub: azuritetest.HubName(t), dir: t.TempDir()}
	r.env = appEnv(t, r.hub, append([]string{"CRASHTEST_DIR=" + r.dir,
		"DURABLE_MESSAGE_VISIBILITY=2s", "DURABLE_LEASE_INTERVAL=3s"}, extra...)...)
	r.bin = binary(t, "./e2e/testapp")
	r.p1 = startApp(t, r.bin, r.env...)
	resp := do(t, http.MethodPost, r.p1.base+"/api/orchestrators/CrashTest", `{"note":"`+note+`"}`)
	if resp.status != http.StatusAccepted {
		t.Fatalf("start: %d %s", resp.status, resp.body)
	}
	r.cs = decode[checkStatus](t, resp.body)
	waitFile(t, r.p1, filepath.Join(r.dir, "blocked"), 30*time.Second)
	return r
}

// killAndResume kills the first process with SIGKILL, releases step two,
// starts a second process and waits for the instance to complete; it
// checks the output and returns the activity runs in order.
func (r *crashRun) killAndResume(t *testing.T) (string, statusPayload) {
	t.Helper()
	r.p1.kill()
	// Step two is released only now: its first run died with the process.
	if err := os.WriteFile(filepath.Join(r.dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p2 := startApp(t, r.bin, r.env...)
	statusURL := strings.Replace(r.cs.StatusQueryGetURI, r.p1.base, p2.base, 1)
	final := pollStatus(t, statusURL, 60*time.Second)
	st := decode[statusPayload](t, final.body)
	if st.RuntimeStatus != "Completed" || string(st.Output) != `["done one","done two","done three"]` {
		t.Fatalf("final status: %s", final.body)
	}
	runs, err := os.ReadFile(filepath.Join(r.dir, "runs.log"))
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, r.hub, []string{r.cs.ID}, func(string) string { return `["done one","done two","done three"]` })
	checkNoDuplicates(t, r.hub, r.cs.ID, 3)
	return string(runs), st
}

// TestCrashRecovery kills the app with SIGKILL while the second of three
// activities runs, restarts it, and checks that the instance completes with
// the right output, that the completed first step did not run again, and
// that history holds no duplicated event.
func TestCrashRecovery(t *testing.T) {
	r := startCrashRun(t, "crash me")
	// Kill only once step one is durable: its result is in history, so
	// nothing may run it again.
	waitUntil(t, r.p1, 30*time.Second, "step one checkpointed", func() bool {
		return countInHistory(t, r.p1.base, r.cs.ID, "TaskCompleted") == 1
	})
	runs, st := r.killAndResume(t)
	if string(st.Input) != `{"note":"crash me"}` {
		t.Errorf("input = %s", st.Input)
	}
	// "one" completed before the crash and must not run again; "two" was
	// running when the process died and runs again (at least once).
	if runs != "one\ntwo\ntwo\nthree\n" {
		t.Fatalf("activity runs:\n%s", runs)
	}
}

// TestCrashInsideCoalescedWindow kills the app with SIGKILL while the
// episodes of an instance are coalesced and nothing of them is committed:
// step one has run and its result fed the next episode, step two is
// running, and history is still empty (the window's budget is an hour, so
// only the instance's end would commit it). The README promises that such
// a crash re-runs every activity of the window (at least once) and loses
// nothing recorded: the restarted app runs the instance from its start
// message, with the right output and no duplicated history event.
func TestCrashInsideCoalescedWindow(t *testing.T) {
	r := startCrashRun(t, "inside the window", "DURABLE_COALESCE_BUDGET=1h")
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: r.hub})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := store.LoadHistory(t.Context(), r.cs.ID); err != nil || len(h.Events) != 0 {
		t.Fatalf("before the kill, history should be empty (the window is uncommitted): %d events, %v", len(h.Events), err)
	}
	// Both steps of the lost window run again; step three runs once.
	if runs, _ := r.killAndResume(t); runs != "one\ntwo\none\ntwo\nthree\n" {
		t.Fatalf("activity runs:\n%s", runs)
	}
}

// checkNoDuplicates fails the test if the instance's history holds an
// event or a response twice, or not exactly wantCompleted TaskCompleted
// events.
func checkNoDuplicates(t *testing.T, hub, id string, wantCompleted int) {
	t.Helper()
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: hub})
	if err != nil {
		t.Fatal(err)
	}
	h, err := store.LoadHistory(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var types []string
	for _, ev := range h.Events {
		types = append(types, ev.Type.String())
		var key string
		switch ev.Type {
		case history.TaskScheduled, history.ExecutionStarted, history.ExecutionCompleted:
			key = ev.Type.String() + "/" + jsonInt(ev.EventID)
		case history.TaskCompleted, history.TaskFailed:
			key = "response/" + jsonInt(ev.TaskScheduledID)
		default:
			continue
		}
		if seen[key] {
			t.Errorf("duplicated history event %s in %v", key, types)
		}
		seen[key] = true
	}
	if n := strings.Count(strings.Join(types, " "), "TaskCompleted"); n != wantCompleted {
		t.Errorf("history has %d TaskCompleted events, want %d: %v", n, wantCompleted, types)
	}
}

func jsonInt(n int32) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// waitUntil polls cond while the app runs.
func waitUntil(t *testing.T, p *process, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-p.done:
			t.Fatalf("app exited while waiting for %s", what)
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func countInHistory(t *testing.T, base, id, eventType string) int {
	r := do(t, http.MethodGet, base+"/api/durabletask/instances/"+id+"?showHistory=true", "")
	st := decode[statusPayload](t, r.body)
	n := 0
	for _, raw := range st.HistoryEvents {
		if decode[map[string]any](t, raw)["EventType"] == eventType {
			n++
		}
	}
	return n
}
