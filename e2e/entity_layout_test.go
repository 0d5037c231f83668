package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// jsonKeys returns the member names of the JSON object text, in order.
func jsonKeys(t *testing.T, text string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(text))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s is not a JSON object: %v", text, err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// schedulerState is Durable Task's SchedulerState as it reads it
// (DurableTask.Core/Entities/StateFormat/SchedulerState.cs: "state",
// "queue", "lockedBy", "suspended", "sorter"), with the Durable Functions
// extension's "exists" (EntityScheduler/SchedulerState.cs).
type schedulerState struct {
	Exists    *bool             `json:"exists"`
	State     *string           `json:"state"`
	Queue     []json.RawMessage `json:"queue"`
	LockedBy  *string           `json:"lockedBy"`
	Suspended bool              `json:"suspended"`
	Sorter    map[string]any    `json:"sorter"`
}

var guidN = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestEntityStorageLayout signals the sample's Counter entity and reads
// what lands in storage with the plain Azure SDK, comparing it with what
// Durable Task writes and reads (files of Azure/durabletask cited inline):
// the signal's control-queue message, then, after the real app processed
// it, the Instances row and the History rows, and after a second signal (over
// HTTP) the new execution that every batch starts.
func TestEntityStorageLayout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hub := azuritetest.HubName(t)
	lower := strings.ToLower(hub)
	const id = "@counter@layout"

	// The signal is sent by the Go client of another process (the one the
	// HTTP API uses), before the app runs, so that it can be read in the
	// queue.
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: hub})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateTaskHub(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.DeleteTaskHub(context.Background()) })
	sent := time.Now().UTC()
	if err := client.New(store, nil, nil).SignalEntity(ctx, history.NewEntityID("Counter", "layout"), "add", 5); err != nil {
		t.Fatal(err)
	}

	// The queue: AzureStorageOrchestrationService.GetControlQueue routes by
	// Fnv1aHashHelper.ComputeHash(instanceId) % PartitionCount (UTF-8 bytes,
	// 32-bit FNV-1a).
	h := fnv.New32a()
	h.Write([]byte(id))
	partition := int(h.Sum32() % 4)
	qsvc := queueService(t)
	for p := range 4 {
		peeked, err := qsvc.NewQueueClient(fmt.Sprintf("%s-control-%02d", lower, p)).PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr(int32(32))})
		if err != nil {
			t.Fatal(err)
		}
		if p != partition {
			if len(peeked.Messages) != 0 {
				t.Fatalf("control queue %d holds %d messages; the signal belongs in %d", p, len(peeked.Messages), partition)
			}
			continue
		}
		if len(peeked.Messages) != 1 {
			t.Fatalf("control queue %d holds %d messages, want the signal", p, len(peeked.Messages))
		}
		text := *peeked.Messages[0].MessageText
		// MessageData (DurableTask.AzureStorage/MessageData.cs) around a
		// TaskMessage (DurableTask.Core/TaskMessage.cs) whose Event is the
		// EventRaisedEvent of ClientEntityHelpers.EmitOperationSignal.
		var md struct {
			Type        string `json:"$type"`
			ActivityID  string `json:"ActivityId"`
			TaskMessage struct {
				Type  string `json:"$type"`
				Event struct {
					Type      string `json:"$type"`
					EventType int
					EventID   int `json:"EventId"`
					Name      string
					Input     string
				}
				OrchestrationInstance struct {
					InstanceID  string  `json:"InstanceId"`
					ExecutionID *string `json:"ExecutionId"`
				}
			}
		}
		if err := json.Unmarshal([]byte(text), &md); err != nil {
			t.Fatalf("queue message %s: %v", text, err)
		}
		ev, target := md.TaskMessage.Event, md.TaskMessage.OrchestrationInstance
		if md.Type != "DurableTask.AzureStorage.MessageData" || md.TaskMessage.Type != "DurableTask.Core.TaskMessage" ||
			ev.Type != "DurableTask.Core.History.EventRaisedEvent" || ev.EventType != 15 || ev.EventID != -1 || ev.Name != "op" {
			t.Errorf("queue message is not MessageData > TaskMessage > EventRaisedEvent \"op\" (EventType 15, EventId -1): %s", text)
		}
		if target.InstanceID != id || (target.ExecutionID != nil && *target.ExecutionID != "") {
			t.Errorf("target %+v, want InstanceId %s and no ExecutionId", target, id)
		}
		// RequestMessage.cs: DataContract member order; "op", "id",
		// "Timestamp", "Predecessor", "IsLockRequest", "createTrace" always,
		// the others only when not default.
		if keys := strings.Join(jsonKeys(t, ev.Input), ","); keys != "op,signal,input,id,Timestamp,Predecessor,IsLockRequest,createTrace" {
			t.Errorf("request members %s", keys)
		}
		var req struct {
			Op            string
			Signal        bool
			Input         string
			ID            string
			Timestamp     string
			Predecessor   string
			IsLockRequest bool
			CreateTrace   bool `json:"createTrace"`
		}
		if err := json.Unmarshal([]byte(ev.Input), &req); err != nil {
			t.Fatal(err)
		}
		ts, err := time.Parse(time.RFC3339Nano, req.Timestamp)
		if req.Op != "add" || !req.Signal || req.Input != "5" || req.IsLockRequest || req.CreateTrace ||
			req.Predecessor != "0001-01-01T00:00:00" || err != nil || !strings.HasSuffix(req.Timestamp, "Z") ||
			ts.Before(sent.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) {
			t.Errorf("request %s (timestamp %v)", ev.Input, err)
		}
		// Guid.ToString() ("D"): lowercase, hyphenated.
		if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(req.ID) {
			t.Errorf("request id %q is not a GUID", req.ID)
		}
	}

	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, hub, "CRASHTEST_DIR="+t.TempDir())...)
	waitReady(t, p)
	api := p.base + "/api/durabletask/entities/Counter/layout"
	waitEntityBody(t, api, "5")
	first := checkEntityRows(ctx, t, hub, id, "5")

	expect(t, do(t, http.MethodPost, api+"?op=add", "2"), http.StatusAccepted, "")
	waitEntityBody(t, api, "7")
	second := checkEntityRows(ctx, t, hub, id, "7")
	if second == first {
		t.Errorf("the second batch kept execution %s; Durable Task starts a new one per batch", first)
	}
}

// checkEntityRows checks the Instances and History rows of entity id whose
// state is state, and returns the execution ID.
func checkEntityRows(ctx context.Context, t *testing.T, hub, id, state string) string {
	t.Helper()
	svc := tableService(t)
	raw, err := svc.NewClient(hub+"Instances").GetEntity(ctx, id, "", &aztables.GetEntityOptions{Format: to.Ptr(aztables.MetadataFormatFull)})
	if err != nil {
		t.Fatalf("Instances row: %v", err)
	}
	row := decode[map[string]any](t, raw.Value)
	// TaskEntityDispatcher.cs: the entity stays Running; its custom status
	// is EntityStatus ({"entityExists":true}, members omitted when default,
	// EntityStatus.cs); Name is the instance's (ExecutionStarted.Name).
	for col, want := range map[string]any{
		"PartitionKey": id, "RowKey": "", "Name": id, "RuntimeStatus": "Running", "TaskHubName": hub,
		"CustomStatus":           `{"entityExists":true}`,
		"CreatedTime@odata.type": "Edm.DateTime", "LastUpdatedTime@odata.type": "Edm.DateTime",
	} {
		if row[col] != want {
			t.Errorf("Instances.%s = %v, want %v", col, row[col], want)
		}
	}
	execID, _ := row["ExecutionId"].(string)
	if !guidN.MatchString(execID) {
		t.Errorf("Instances.ExecutionId = %v, want Guid.ToString(\"N\")", row["ExecutionId"])
	}
	input, _ := row["Input"].(string)
	checkSchedulerState(t, "Instances.Input", input, state)

	filter := "PartitionKey eq '" + id + "'"
	pager := svc.NewClient(hub + "History").NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Format: to.Ptr(aztables.MetadataFormatFull)})
	var types []string
	started := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entities {
			r := decode[map[string]any](t, e)
			if r["RowKey"] == "sentinel" {
				continue
			}
			typ, _ := r["EventType"].(string)
			types = append(types, typ)
			if r["ExecutionId"] != execID {
				t.Errorf("history row %v of execution %v, want only the current execution %s", r["RowKey"], r["ExecutionId"], execID)
			}
			if typ == "ExecutionStarted" {
				started++
				in, _ := r["Input"].(string)
				if in != input || r["Name"] != id {
					t.Errorf("ExecutionStarted Name %v, Input %s; want %s and the Instances row's Input %s", r["Name"], in, id, input)
				}
			}
		}
	}
	// Durable Task's batch writes OrchestratorStarted, ExecutionStarted,
	// OrchestratorCompleted (TaskEntityDispatcher.cs).
	if started != 1 || strings.Join(types, ",") != "OrchestratorStarted,ExecutionStarted,OrchestratorCompleted" {
		t.Errorf("history of the current execution: %v, want OrchestratorStarted, ExecutionStarted, OrchestratorCompleted", types)
	}
	t.Logf("entity %s: execution %s, history %v, scheduler state %s", id, execID, types, input)
	return execID
}

// checkSchedulerState checks that text is a scheduler state Durable Task
// and the Durable Functions extension read as an existing entity with
// state, unlocked, with nothing queued.
func checkSchedulerState(t *testing.T, what, text, state string) {
	t.Helper()
	var s schedulerState
	dec := json.NewDecoder(bytes.NewReader([]byte(text)))
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("%s %s: %v", what, text, err)
	}
	if s.State == nil || *s.State != state || s.Exists == nil || !*s.Exists || s.Queue != nil || s.LockedBy != nil || s.Suspended || s.Sorter == nil {
		t.Errorf("%s = %s, want state %q, exists, no queue or lock, a sorter", what, text, state)
	}
	if keys := jsonKeys(t, text); len(keys) < 2 || keys[0] != "exists" || keys[1] != "state" {
		t.Errorf("%s members %v, want exists and state first", what, keys)
	}
}
