package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/invariants"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestVersioning runs one task hub through app deployments of different
// orchestration versions, as real processes on Azurite:
//  1. version 1 starts A, which takes its version-1 path up to its wait;
//  2. version 2 (CurrentOrOlder) starts B, and P at version 1 through the
//     management API's ?version= (as the JavaScript client's
//     startNew({version}) sends it); events to A and B: A finishes on its
//     version-1 path, B on version 2; P continues as new and its child
//     inherits version 1; U, started at version 1, upgrades itself to
//     version 2 by ContinueAsNew and runs there;
//  3. a Strict version-2 app with Reject leaves C (version 1) Pending, its
//     start message in the control queue and no history, until
//  4. a version-1 app runs it; R, started there at version 1, continues as
//     new at version 2, which this app rejects: R's new execution is left
//     unrun (its ExecutionStarted alone, Pending) until
//  5. a Strict version-2 app with Fail runs R at version 2, and fails D
//     (version 1) with a VersionMismatch naming both versions.
//
// Every instance's ExecutionStarted.Version and Instances Version column
// are checked in storage, then the invariant checker runs over all.
func TestVersioning(t *testing.T) {
	hub := azuritetest.HubName(t)
	bin := binary(t, "./e2e/testapp")
	env := func(extra ...string) []string {
		return appEnv(t, hub, append([]string{"DURABLE_PARTITION_COUNT=1", "DURABLE_MESSAGE_VISIBILITY=3s"}, extra...)...)
	}
	run := func(extra ...string) *process {
		p := startApp(t, bin, env(extra...)...)
		waitReady(t, p)
		return p
	}
	raise := func(p *process, id string) {
		t.Helper()
		r := do(t, http.MethodPost, p.base+"/api/durabletask/instances/"+id+"/raiseEvent/Go", `"go"`)
		if r.status != http.StatusAccepted {
			t.Fatalf("raise Go on %s: %d %s", id, r.status, r.body)
		}
	}
	output := func(p *process, id string) (string, string) {
		t.Helper()
		r := pollStatus(t, p.base+"/api/durabletask/instances/"+id, 30*time.Second)
		st := decode[statusPayload](t, r.body)
		return st.RuntimeStatus, string(st.Output)
	}

	// 1. Version 1: A runs its first step and waits.
	v1 := run("DURABLE_DEFAULT_VERSION=1")
	startVia(t, v1.base, "Versioned/A", "")
	waitHistory(t, v1, "A", "TaskCompleted")
	v1.stop()

	// 2. Version 2, CurrentOrOlder (the default with a default version).
	v2 := run("DURABLE_DEFAULT_VERSION=2")
	startVia(t, v2.base, "Versioned/B", "")
	startVia(t, v2.base, "VersionedParent/P?version=1", "0")
	startVia(t, v2.base, "Upgrading/U?version=1", `"start"`)
	waitHistory(t, v2, "B", "TaskCompleted")
	raise(v2, "A")
	raise(v2, "B")
	for id, want := range map[string]string{"A": `"v1 before|go|v1 after"`, "B": `"v2 before|go|v2 after"`, "P": `["1","1"]`,
		"U": `"version 2 after 1"`} {
		if status, out := output(v2, id); status != "Completed" || out != want {
			t.Errorf("instance %s: %s %s, want Completed %s", id, status, out, want)
		}
	}
	v2.stop()

	// 3. Strict version 2, Reject: C at version 1 is not touched.
	strict := run("DURABLE_DEFAULT_VERSION=2", "DURABLE_VERSION_MATCH=Strict", "DURABLE_VERSION_FAILURE=Reject")
	startVia(t, strict.base, "Versioned/C?version=1", "")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(strict.out.String(), "not running an instance of another orchestration version") {
		if time.Now().After(deadline) {
			t.Fatalf("the strict app never said it rejected C:\n%s", strict.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := decode[statusPayload](t, do(t, http.MethodGet, strict.base+"/api/durabletask/instances/C", "").body)
	if st.RuntimeStatus != "Pending" {
		t.Errorf("C under the strict version-2 app: %s, want Pending", st.RuntimeStatus)
	}
	if n := queuedMessages(t, strings.ToLower(hub)+"-control-00"); n != 1 {
		t.Errorf("%d messages in the control queue under the strict app, want C's start", n)
	}
	if evs := historyRows(t, hub, "C"); len(evs) != 0 {
		t.Errorf("C has %d history rows under the strict app, want none", len(evs))
	}
	strict.stop()
	if n := strings.Count(strict.out.String(), "not running an instance of another orchestration version"); n != 1 {
		t.Errorf("the strict app logged the rejection of C %d times, want once", n)
	}

	// 4. Version 1 runs C.
	v1 = run("DURABLE_DEFAULT_VERSION=1")
	waitHistory(t, v1, "C", "TaskCompleted")
	raise(v1, "C")
	if status, out := output(v1, "C"); status != "Completed" || out != `"v1 before|go|v1 after"` {
		t.Errorf("instance C: %s %s", status, out)
	}
	startVia(t, v1.base, "Upgrading/R", `"start"`)
	deadline = time.Now().Add(30 * time.Second)
	for {
		rows := historyRows(t, hub, "R")
		if len(rows) == 1 && rows[0]["EventType"] == "ExecutionStarted" && rows[0]["Version"] == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("R's new execution was not left unrun at version 2 by the version-1 app: %v\n%s", rows, v1.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := decode[statusPayload](t, do(t, http.MethodGet, v1.base+"/api/durabletask/instances/R", "").body); st.RuntimeStatus != "Pending" {
		t.Errorf("R's unrun execution under the version-1 app: %s, want Pending", st.RuntimeStatus)
	}
	v1.stop()

	// 5. Strict version 2, Fail: D at version 1 fails.
	failing := run("DURABLE_DEFAULT_VERSION=2", "DURABLE_VERSION_MATCH=Strict", "DURABLE_VERSION_FAILURE=Fail")
	startVia(t, failing.base, "Versioned/D?version=1", "")
	if status, out := output(failing, "R"); status != "Completed" || out != `"version 2 after 1"` {
		t.Errorf("instance R on the version-2 app: %s %s", status, out)
	}
	mismatch := (&engine.VersionMismatchError{InstanceVersion: "1", WorkerVersion: "2", Match: engine.MatchStrict}).Error()
	if status, out := output(failing, "D"); status != "Failed" || out != jsonString(t, "VersionMismatch: "+mismatch) {
		t.Errorf("instance D: %s %s, want Failed with %q", status, out, mismatch)
	}
	failing.stop()

	// Versions as stored: ExecutionStarted.Version in history (P's is its
	// execution after ContinueAsNew) and the Instances Version column.
	for id, want := range map[string]string{"A": "1", "B": "2", "P": "1", "P-child": "1", "C": "1", "D": "1", "U": "2", "R": "2"} {
		rows := historyRows(t, hub, id)
		starts := 0
		for _, r := range rows {
			if r["EventType"] == "ExecutionStarted" {
				starts++
				if r["Version"] != want {
					t.Errorf("ExecutionStarted of %s has Version %v, want %q", id, r["Version"], want)
				}
			}
		}
		if starts != 1 {
			t.Errorf("%s has %d ExecutionStarted rows", id, starts)
		}
		if v := instanceColumn(t, hub, id, "Version"); v != want {
			t.Errorf("Instances row of %s has Version %v, want %q", id, v, want)
		}
	}

	outputs := map[string]invariants.Want{
		"A":       {Status: history.StatusCompleted, Output: `"v1 before|go|v1 after"`},
		"B":       {Status: history.StatusCompleted, Output: `"v2 before|go|v2 after"`},
		"C":       {Status: history.StatusCompleted, Output: `"v1 before|go|v1 after"`},
		"P":       {Status: history.StatusCompleted, Output: `["1","1"]`},
		"P-child": {Status: history.StatusCompleted, Output: `"1"`},
		"D":       {Status: history.StatusFailed, Output: "VersionMismatch: " + mismatch},
		"U":       {Status: history.StatusCompleted, Output: `"version 2 after 1"`},
		"R":       {Status: history.StatusCompleted, Output: `"version 2 after 1"`},
	}
	checker, err := invariants.New(invariants.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: hub,
		PartitionCount: 1, DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"A", "B", "C", "P", "P-child", "D", "U", "R"}
	vs, err := checker.Check(t.Context(), ids, func(id string) invariants.Want { return outputs[id] })
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) > 0 {
		t.Errorf("%d invariant violations:\n%s", len(vs), invariants.Format(vs))
	}
}

// waitHistory polls the instance's history (management API) until it holds
// an event of type typ.
func waitHistory(t *testing.T, p *process, id, typ string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := do(t, http.MethodGet, p.base+"/api/durabletask/instances/"+id+"?showHistory=true", "")
		if r.status == http.StatusOK || r.status == http.StatusAccepted {
			for _, raw := range decode[statusPayload](t, r.body).HistoryEvents {
				var ev struct{ EventType string }
				if json.Unmarshal(raw, &ev) == nil && ev.EventType == typ {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s has no %s in its history: %d %s\n%s", id, typ, r.status, r.body, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// historyRows returns the raw History table rows of instance id.
func historyRows(t *testing.T, hub, id string) []map[string]any {
	t.Helper()
	filter := "PartitionKey eq '" + id + "'"
	pager := tableService(t).NewClient(hub + "History").NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter})
	var rows []map[string]any
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entities {
			var m map[string]any
			if err := json.Unmarshal(e, &m); err != nil {
				t.Fatal(err)
			}
			if m["RowKey"] != "sentinel" {
				rows = append(rows, m)
			}
		}
	}
	return rows
}

// instanceColumn returns a column of instance id's raw Instances row.
func instanceColumn(t *testing.T, hub, id, column string) any {
	t.Helper()
	e, err := tableService(t).NewClient(hub+"Instances").GetEntity(t.Context(), id, "", nil)
	if err != nil {
		t.Fatalf("Instances row of %s: %v", id, err)
	}
	var m map[string]any
	if err := json.Unmarshal(e.Value, &m); err != nil {
		t.Fatal(err)
	}
	return m[column]
}

// queuedMessages returns a queue's approximate message count (visible and
// hidden).
func queuedMessages(t *testing.T, queue string) int32 {
	t.Helper()
	props, err := queueService(t).NewQueueClient(queue).GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if props.ApproximateMessagesCount == nil {
		return 0
	}
	return *props.ApproximateMessagesCount
}

// jsonString returns s as the management API renders a stored text that is
// not JSON: a JSON string.
func jsonString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
