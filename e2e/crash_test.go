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

// TestCrashRecovery kills the app with SIGKILL while the second of three
// activities runs, restarts it, and checks that the instance completes with
// the right output, that the completed first step did not run again, and
// that history holds no duplicated event.
func TestCrashRecovery(t *testing.T) {
	hub := azuritetest.HubName(t)
	dir := t.TempDir()
	env := appEnv(t, hub,
		"CRASHTEST_DIR="+dir,
		"DURABLE_MESSAGE_VISIBILITY=2s",
		"DURABLE_LEASE_INTERVAL=3s",
	)
	bin := binary(t, "./e2e/testapp")
	p1 := startApp(t, bin, env...)
	r := do(t, http.MethodPost, p1.base+"/api/orchestrators/CrashTest", `{"note":"crash me"}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	cs := decode[checkStatus](t, r.body)
	waitFile(t, p1, filepath.Join(dir, "blocked"), 30*time.Second)
	// Kill only once step one is durable: its result is in history, so
	// nothing may run it again.
	waitUntil(t, p1, 30*time.Second, "step one checkpointed", func() bool {
		return countInHistory(t, p1.base, cs.ID, "TaskCompleted") == 1
	})
	p1.kill()

	// The second step is released only now: its first run died with the process.
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p2 := startApp(t, bin, env...)
	statusURL := strings.Replace(cs.StatusQueryGetURI, p1.base, p2.base, 1)
	final := pollStatus(t, statusURL, 60*time.Second)
	st := decode[statusPayload](t, final.body)
	if st.RuntimeStatus != "Completed" || string(st.Output) != `["done one","done two","done three"]` {
		t.Fatalf("final status: %s", final.body)
	}
	if string(st.Input) != `{"note":"crash me"}` {
		t.Errorf("input = %s", st.Input)
	}

	runs, err := os.ReadFile(filepath.Join(dir, "runs.log"))
	if err != nil {
		t.Fatal(err)
	}
	// "one" completed before the crash and must not run again; "two" was
	// running when the process died and runs again (at least once).
	if got := string(runs); got != "one\ntwo\ntwo\nthree\n" {
		t.Fatalf("activity runs:\n%s", got)
	}

	checkInvariants(t, hub, []string{cs.ID}, func(string) string { return `["done one","done two","done three"]` })
	checkNoDuplicates(t, hub, cs.ID, 3)
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
	hub := azuritetest.HubName(t)
	dir := t.TempDir()
	env := appEnv(t, hub,
		"CRASHTEST_DIR="+dir,
		"DURABLE_MESSAGE_VISIBILITY=2s",
		"DURABLE_LEASE_INTERVAL=3s",
		"DURABLE_COALESCE_BUDGET=1h",
	)
	bin := binary(t, "./e2e/testapp")
	p1 := startApp(t, bin, env...)
	r := do(t, http.MethodPost, p1.base+"/api/orchestrators/CrashTest", `{"note":"inside the window"}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	cs := decode[checkStatus](t, r.body)
	waitFile(t, p1, filepath.Join(dir, "blocked"), 30*time.Second)
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: hub})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := store.LoadHistory(t.Context(), cs.ID); err != nil || len(h.Events) != 0 {
		t.Fatalf("before the kill, history should be empty (the window is uncommitted): %d events, %v", len(h.Events), err)
	}
	p1.kill()

	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p2 := startApp(t, bin, env...)
	statusURL := strings.Replace(cs.StatusQueryGetURI, p1.base, p2.base, 1)
	final := pollStatus(t, statusURL, 60*time.Second)
	st := decode[statusPayload](t, final.body)
	if st.RuntimeStatus != "Completed" || string(st.Output) != `["done one","done two","done three"]` {
		t.Fatalf("final status: %s", final.body)
	}
	runs, err := os.ReadFile(filepath.Join(dir, "runs.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Both steps of the lost window run again; step three runs once.
	if got := string(runs); got != "one\ntwo\none\ntwo\nthree\n" {
		t.Fatalf("activity runs:\n%s", got)
	}
	checkInvariants(t, hub, []string{cs.ID}, func(string) string { return `["done one","done two","done three"]` })
	checkNoDuplicates(t, hub, cs.ID, 3)
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
