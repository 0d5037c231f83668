package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

// historyFailure is the FailureDetails of a history entry of the management API.
type historyFailure struct {
	ErrorType      string
	ErrorMessage   string
	IsNonRetriable bool
	Properties     map[string]json.RawMessage
	InnerFailure   *historyFailure
}

type historyEntry struct {
	EventType       string
	FunctionName    string
	TaskScheduledID int `json:"TaskScheduledId"`
	FailureDetails  *historyFailure
}

// attempts counts the runs of Charge for key.
func attempts(t *testing.T, dir, key string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "attempts-"+key))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestTypedErrorsAcrossTheBoundary runs TypedErrors on Azurite: an activity
// failing twice with a retriable typed error succeeds on its third attempt;
// one failing with a NonRetriable error runs once although its policy
// retries everything; a sub-orchestration re-raising a CardDeclined failure
// is not retried, because the README's Handle predicate matches the type
// with errors.Is. The orchestrator sees type, message and details through
// errors.As, and the management API's history shows them as recorded.
func TestTypedErrorsAcrossTheBoundary(t *testing.T) {
	hub := azuritetest.HubName(t)
	dir := t.TempDir()
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, hub, "CRASHTEST_DIR="+dir)...)
	cs := startVia(t, p.base, "TypedErrors/typed-1", `"k"`)
	r := pollStatus(t, cs.StatusQueryGetURI+"&showHistory=true&showHistoryOutput=true", 60*time.Second)
	st := decode[statusPayload](t, r.body)
	const want = `{"busy":"charged k-busy on attempt 3",` +
		`"fatal":{"isDeclined":true,"type":"CardDeclined","message":"card declined for good","nonRetriable":true,"code":51},` +
		`"child":{"isDeclined":true,"type":"CardDeclined","message":"card declined","nonRetriable":false,"code":51}}`
	if st.RuntimeStatus != "Completed" || string(st.Output) != want {
		t.Fatalf("%s: output\n  %s\nwant\n  %s", st.RuntimeStatus, st.Output, want)
	}
	for key, n := range map[string]int{"k-busy": 3, "k-fatal": 1, "k-child": 1} {
		if got := attempts(t, dir, key); got != n {
			t.Errorf("Charge ran %d times for %s, want %d", got, key, n)
		}
	}

	// What history records, as the management API shows it.
	var failed []historyEntry
	for _, raw := range st.HistoryEvents {
		e := decode[historyEntry](t, raw)
		if e.FailureDetails != nil && e.EventType != "ExecutionCompleted" {
			failed = append(failed, e)
		}
	}
	if len(failed) != 4 { // busy ×2, fatal, child
		t.Fatalf("%d failures in history, want 4: %+v", len(failed), failed)
	}
	for i, e := range failed[:2] {
		f := e.FailureDetails
		if e.EventType != "TaskFailed" || f.ErrorType != "GatewayBusy" || f.IsNonRetriable ||
			string(f.Properties["details"]) != `{"attempt":`+string(rune('1'+i))+`}` {
			t.Errorf("busy failure %d: %+v (details %s)", i+1, f, f.Properties["details"])
		}
	}
	fatal := failed[2].FailureDetails
	if failed[2].FunctionName != "Charge" || fatal.ErrorType != "CardDeclined" || fatal.ErrorMessage != "card declined for good" ||
		!fatal.IsNonRetriable || string(fatal.Properties["details"]) != `{"code":51,"reason":"insufficient funds"}` {
		t.Errorf("fatal failure: %+v (details %s)", fatal, fatal.Properties["details"])
	}
	child := failed[3]
	if child.EventType != "SubOrchestrationInstanceFailed" || child.FailureDetails.ErrorType != "TaskFailedError" ||
		child.FailureDetails.InnerFailure == nil || child.FailureDetails.InnerFailure.ErrorType != "CardDeclined" ||
		string(child.FailureDetails.InnerFailure.Properties["details"]) != `{"code":51,"reason":"insufficient funds"}` {
		t.Errorf("child failure: %+v", child.FailureDetails)
	}

	// The child's own status: failed, its output naming the re-raised failure.
	cr := do(t, http.MethodGet, p.base+"/api/durabletask/instances/typed-1-child", "")
	childSt := decode[statusPayload](t, cr.body)
	if childSt.RuntimeStatus != "Failed" || !strings.Contains(string(childSt.Output), `CardDeclined: card declined`) {
		t.Errorf("child status %d %s", cr.status, cr.body)
	}
	checkInvariants(t, hub, []string{cs.ID}, func(string) string { return want })
}

// TestTimeoutsEndToEnd runs Timeouts on Azurite: an activity that blocks
// until its context ends, and a sub-orchestration that waits for an event,
// each called WithTimeout(2s). The orchestration gets both timeouts, the
// activity saw its context end at the deadline, and the child runs on
// until it gets its event.
func TestTimeoutsEndToEnd(t *testing.T) {
	hub := azuritetest.HubName(t)
	dir := t.TempDir()
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, hub, "CRASHTEST_DIR="+dir)...)
	began := time.Now()
	cs := startVia(t, p.base, "Timeouts/timeouts-1", `"t"`)
	r := pollStatus(t, cs.StatusQueryGetURI, 60*time.Second)
	took := time.Since(began)
	st := decode[statusPayload](t, r.body)
	const want = `["activity \"Block\" (task 0) timed out after 2s","sub-orchestration \"Waiter\" (task 2) timed out after 2s"]`
	if st.RuntimeStatus != "Completed" || string(st.Output) != want {
		t.Fatalf("%s: output %s, want %s", st.RuntimeStatus, st.Output, want)
	}
	t.Logf("both calls timed out; the orchestration took %v", took.Round(time.Millisecond))

	// The activity observed the cancellation (it may write its marker
	// just after the orchestration has moved on).
	marker := filepath.Join(dir, "cancelled-t")
	var cause []byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		if cause, err = os.ReadFile(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the activity never saw its context end: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.HasPrefix(string(cause), "context deadline exceeded at deadline ") {
		t.Fatalf("the activity saw %q", cause)
	}

	// The timed-out child keeps running until it gets its event.
	childID := "timeouts-1-child"
	waitRuntimeStatus(t, p.base, childID, "Running")
	if r := do(t, http.MethodPost, p.base+"/api/durabletask/instances/"+childID+"/raiseEvent/Go", `"late"`); r.status != http.StatusAccepted {
		t.Fatalf("raise: %d %s", r.status, r.body)
	}
	if cst := waitRuntimeStatus(t, p.base, childID, "Completed"); string(cst.Output) != `"late"` {
		t.Fatalf("child output %s", cst.Output)
	}
	checkInvariants(t, hub, []string{cs.ID, childID}, func(id string) string {
		if id == childID {
			return `"late"`
		}
		return want
	})
}
