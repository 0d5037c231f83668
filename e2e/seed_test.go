package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
)

const wantOutput = `["Hello Tokyo!","Hello Seattle!","Hello London!"]`

// runSample starts the sample through the HTTP start route at base and
// waits until it completed with wantOutput.
func runSample(t *testing.T, base string) {
	t.Helper()
	r := do(t, http.MethodPost, base+"/api/orchestrators/Orchestrator", "")
	if r.status != http.StatusAccepted {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	cs := decode[checkStatus](t, r.body)
	final := pollStatus(t, cs.StatusQueryGetURI, 30*time.Second)
	if st := decode[statusPayload](t, final.body); st.RuntimeStatus != "Completed" || string(st.Output) != wantOutput {
		t.Fatalf("final status: %s", final.body)
	}
}

// runSeed drives the classic sample through base (a public URL root) and
// returns the instance ID.
func runSeed(t *testing.T, base string) string {
	t.Helper()
	r := do(t, http.MethodPost, base+"/api/orchestrators/Orchestrator?code=secret1", "")
	if r.status != http.StatusAccepted {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	cs := decode[checkStatus](t, r.body)
	if len(cs.ID) != 32 {
		t.Fatalf("instance ID %q is not 32 hex digits", cs.ID)
	}
	if got := r.header.Get("Location"); got != cs.StatusQueryGetURI {
		t.Fatalf("Location %q != statusQueryGetUri %q", got, cs.StatusQueryGetURI)
	}
	if r.header.Get("Retry-After") != "10" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("headers: %v", r.header)
	}
	inst := base + "/api/durabletask/instances/" + cs.ID
	for name, got := range map[string]string{
		"statusQueryGetUri":     cs.StatusQueryGetURI,
		"sendEventPostUri":      cs.SendEventPostURI,
		"terminatePostUri":      cs.TerminatePostURI,
		"rewindPostUri":         cs.RewindPostURI,
		"purgeHistoryDeleteUri": cs.PurgeHistoryDeleteURI,
		"restartPostUri":        cs.RestartPostURI,
		"suspendPostUri":        cs.SuspendPostURI,
		"resumePostUri":         cs.ResumePostURI,
	} {
		if !strings.HasPrefix(got, inst) || !strings.Contains(got, "code=secret1") || !strings.Contains(got, "taskHub=") {
			t.Errorf("%s = %q: want it under %s with taskHub and the caller's code", name, got, inst)
		}
	}
	if !strings.Contains(cs.SendEventPostURI, "/raiseEvent/{eventName}?") || !strings.Contains(cs.TerminatePostURI, "/terminate?reason={text}&") {
		t.Errorf("event/terminate templates: %s %s", cs.SendEventPostURI, cs.TerminatePostURI)
	}

	final := pollStatus(t, cs.StatusQueryGetURI, 30*time.Second)
	st := decode[statusPayload](t, final.body)
	if st.RuntimeStatus != "Completed" || string(st.Output) != wantOutput || st.Name != "Orchestrator" || st.InstanceID != cs.ID {
		t.Fatalf("final status: %s", final.body)
	}
	if _, err := time.Parse("2006-01-02T15:04:05Z", st.CreatedTime); err != nil {
		t.Errorf("createdTime %q: %v", st.CreatedTime, err)
	}
	if _, err := time.Parse("2006-01-02T15:04:05Z", st.LastUpdatedTime); err != nil {
		t.Errorf("lastUpdatedTime %q: %v", st.LastUpdatedTime, err)
	}
	if st.HistoryEvents != nil {
		t.Errorf("historyEvents present without showHistory: %s", final.body)
	}
	return cs.ID
}

func TestSeedStandalone(t *testing.T) {
	hub := azuritetest.HubName(t)
	p := startApp(t, binary(t, "."), appEnv(t, hub)...)
	id := runSeed(t, p.base)
	checkHistoryAPI(t, p.base, id)
	checkStorageLayout(t, hub, id)
	runSampleCounter(t, p.base)
}

func TestSeedThroughHostEmulator(t *testing.T) {
	hub := azuritetest.HubName(t)
	host := startHost(t, ".", appEnv(t, hub))
	id := runSeed(t, host.URL())
	checkHistoryAPI(t, host.URL(), id)
	checkStorageLayout(t, hub, id)
	runSampleCounter(t, host.URL())
	if errs := host.InvocationErrors(); len(errs) > 0 {
		t.Fatalf("the host emulator saw invocation errors: %v", errs)
	}
}

// runSampleCounter runs the README's entity commands against the sample:
// curl -X POST '.../entities/Counter/c1?op=add' -d 5 (a form Content-Type,
// as curl sends it) twice, then GET answers 10.
func runSampleCounter(t *testing.T, base string) {
	t.Helper()
	for range 2 {
		resp, err := http.Post(base+"/api/durabletask/entities/Counter/c1?op=add", "application/x-www-form-urlencoded", strings.NewReader("5"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("signal Counter/c1 add 5: status %d", resp.StatusCode)
		}
	}
	waitEntityBody(t, base+"/api/durabletask/entities/Counter/c1", "10")
}

// checkHistoryAPI reads the status with showHistory and checks the
// Durable Functions shape of the history entries.
func checkHistoryAPI(t *testing.T, base, id string) {
	t.Helper()
	r := do(t, http.MethodGet, base+"/api/durabletask/instances/"+id+"?showHistory=true&showHistoryOutput=true", "")
	if r.status != http.StatusOK {
		t.Fatalf("status with history: %d %s", r.status, r.body)
	}
	st := decode[statusPayload](t, r.body)
	var types []string
	for _, raw := range st.HistoryEvents {
		e := decode[map[string]any](t, raw)
		types = append(types, e["EventType"].(string))
		if e["EventType"] == "TaskCompleted" && (e["FunctionName"] != "Hello" || e["Result"] == nil || e["ScheduledTime"] == nil) {
			t.Errorf("TaskCompleted entry: %s", raw)
		}
	}
	want := "ExecutionStarted TaskCompleted TaskCompleted TaskCompleted ExecutionCompleted"
	if got := strings.Join(types, " "); got != want {
		t.Fatalf("history entries %q, want %q", got, want)
	}
}

// checkStorageLayout inspects the hub with the plain Azure SDK: names,
// the Instances row, the History rows and the sentinel, as Durable Task
// lays them out.
func checkStorageLayout(t *testing.T, hub, id string) {
	t.Helper()
	ctx := context.Background()
	svc := tableService(t)
	var tables []string
	pager := svc.NewListTablesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range page.Tables {
			if strings.HasPrefix(*tb.Name, hub) {
				tables = append(tables, *tb.Name)
			}
		}
	}
	sort.Strings(tables)
	for _, want := range []string{hub + "History", hub + "Instances", hub + "Partitions"} {
		if i := sort.SearchStrings(tables, want); i >= len(tables) || tables[i] != want {
			t.Errorf("table %s missing; have %v", want, tables)
		}
	}

	qsvc := queueService(t)
	lower := strings.ToLower(hub)
	var queues []string
	qp := qsvc.NewListQueuesPager(&azqueue.ListQueuesOptions{Prefix: to.Ptr(lower + "-")})
	for qp.More() {
		page, err := qp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range page.Queues {
			queues = append(queues, *q.Name)
		}
	}
	sort.Strings(queues)
	// Durable Task's queues, and our wake queue (see "Scale from zero").
	wantQueues := []string{lower + "-control-00", lower + "-control-01", lower + "-control-02", lower + "-control-03", lower + "-wake", lower + "-workitems"}
	if strings.Join(queues, ",") != strings.Join(wantQueues, ",") {
		t.Errorf("queues %v, want %v", queues, wantQueues)
	}

	// The Instances row, with EDM types.
	inst := svc.NewClient(hub + "Instances")
	raw, err := inst.GetEntity(ctx, id, "", &aztables.GetEntityOptions{Format: to.Ptr(aztables.MetadataFormatFull)})
	if err != nil {
		t.Fatalf("Instances row: %v", err)
	}
	row := decode[map[string]any](t, raw.Value)
	for col, want := range map[string]any{
		"RuntimeStatus": "Completed", "Output": wantOutput, "Name": "Orchestrator", "TaskHubName": hub,
		"CreatedTime@odata.type": "Edm.DateTime", "LastUpdatedTime@odata.type": "Edm.DateTime",
		"CompletedTime@odata.type": "Edm.DateTime", "CustomStatus": "null",
	} {
		if row[col] != want {
			t.Errorf("Instances.%s = %v, want %v", col, row[col], want)
		}
	}
	if execID, _ := row["ExecutionId"].(string); len(execID) != 32 {
		t.Errorf("Instances.ExecutionId = %v", row["ExecutionId"])
	}

	// The History rows.
	hist := svc.NewClient(hub + "History")
	filter := "PartitionKey eq '" + id + "'"
	hp := hist.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Format: to.Ptr(aztables.MetadataFormatFull)})
	var rows []map[string]any
	for hp.More() {
		page, err := hp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entities {
			rows = append(rows, decode[map[string]any](t, e))
		}
	}
	wantTypes := []string{
		"OrchestratorStarted", "ExecutionStarted", "TaskScheduled", "OrchestratorCompleted",
		"OrchestratorStarted", "TaskCompleted", "TaskScheduled", "OrchestratorCompleted",
		"OrchestratorStarted", "TaskCompleted", "TaskScheduled", "OrchestratorCompleted",
		"OrchestratorStarted", "TaskCompleted", "ExecutionCompleted", "OrchestratorCompleted",
	}
	if len(rows) != len(wantTypes)+1 {
		t.Fatalf("history has %d rows, want %d events + sentinel", len(rows), len(wantTypes))
	}
	scheduled := map[float64]string{}
	for i, want := range wantTypes {
		r := rows[i]
		if rk := r["RowKey"]; rk != fmt.Sprintf("%016X", i) {
			t.Errorf("row %d RowKey = %v", i, rk)
		}
		if r["EventType"] != want {
			t.Errorf("row %d EventType = %v, want %s", i, r["EventType"], want)
		}
		if r["ExecutionId"] != row["ExecutionId"] {
			t.Errorf("row %d ExecutionId = %v, want %v", i, r["ExecutionId"], row["ExecutionId"])
		}
		if r["_Timestamp@odata.type"] != "Edm.DateTime" {
			t.Errorf("row %d _Timestamp type = %v", i, r["_Timestamp@odata.type"])
		}
		eventID, _ := r["EventId"].(float64)
		switch want {
		case "TaskScheduled":
			if r["Name"] != "Hello" {
				t.Errorf("row %d Name = %v", i, r["Name"])
			}
			scheduled[eventID] = r["RowKey"].(string)
		case "TaskCompleted":
			sid := r["TaskScheduledId"].(float64)
			if _, ok := scheduled[sid]; !ok || eventID != -1 {
				t.Errorf("row %d TaskScheduledId %v does not link to a scheduled task (%v)", i, sid, scheduled)
			}
		case "ExecutionCompleted":
			if r["OrchestrationStatus"] != "Completed" || r["Result"] != wantOutput || eventID != 3 {
				t.Errorf("ExecutionCompleted row: %v", r)
			}
		case "ExecutionStarted":
			if r["Name"] != "Orchestrator" || !strings.Contains(r["OrchestrationInstance"].(string), id) {
				t.Errorf("ExecutionStarted row: %v", r)
			}
		default:
			if eventID != -1 {
				t.Errorf("row %d %s EventId = %v, want -1", i, want, eventID)
			}
		}
	}
	if len(scheduled) != 3 || scheduled[0] == "" || scheduled[1] == "" || scheduled[2] == "" {
		t.Errorf("TaskScheduled EventIds: %v, want 0,1,2", scheduled)
	}
	sentinel := rows[len(rows)-1]
	if sentinel["RowKey"] != "sentinel" || sentinel["ExecutionId"] != row["ExecutionId"] {
		t.Errorf("sentinel row: %v", sentinel)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	hub := azuritetest.HubName(t)
	p := startApp(t, binary(t, "."), appEnv(t, hub)...)
	cases := []struct {
		name, method, path, body string
		status                   int
		mention                  string
	}{
		{"unknown orchestrator", "POST", "/api/orchestrators/NoSuchThing", "", 404, "NoSuchThing"},
		{"malformed JSON body", "POST", "/api/orchestrators/Orchestrator", `{"city": "Tok`, 400, "JSON"},
		{"invalid instance ID", "GET", "/api/durabletask/instances/" + url.PathEscape("@entity"), "", 400, "@"},
		{"too long instance ID", "GET", "/api/durabletask/instances/" + strings.Repeat("x", 257), "", 400, "257"},
		{"unknown instance", "GET", "/api/durabletask/instances/abc", "", 404, "abc"},
		{"unknown route", "GET", "/api/nothing/here", "", 404, "/api/nothing/here"},
		{"unknown management operation", "GET", "/api/durabletask/whatever", "", 404, "whatever"},
		{"wrong method", "PUT", "/api/orchestrators/Orchestrator", "", 405, "PUT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, p.base+tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Message == "" {
				t.Fatalf("not a JSON error: %s", r.body)
			}
			if !strings.Contains(e.Error.Message, tc.mention) {
				t.Errorf("message %q does not mention %q", e.Error.Message, tc.mention)
			}
		})
	}
	// Nothing was written: no instance rows, no queued messages.
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: hub})
	if err != nil {
		t.Fatal(err)
	}
	rows, _, err := store.QueryInstances(context.Background(), backendQueryAll())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 0 {
		t.Fatalf("bad requests wrote %d instance rows", len(rows))
	}
}
