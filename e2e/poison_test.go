package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestPoisonMessagesInTheRealApp runs the app with DURABLE_MAX_DEQUEUE_COUNT=3
// and puts hostile messages in its queues: a message of an event type it
// does not know, addressed to a running instance, and a response for an
// instance that never existed. Both are parked after three dequeues (one
// log line each), the running instance fails naming the message, and Echo
// instances keep completing meanwhile.
func TestPoisonMessagesInTheRealApp(t *testing.T) {
	hub := azuritetest.HubName(t)
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, hub,
		"CRASHTEST_DIR="+t.TempDir(),
		"DURABLE_MAX_DEQUEUE_COUNT=3",
		"DURABLE_MESSAGE_VISIBILITY=2s",
	)...)
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: hub})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	r := do(t, http.MethodPost, p.base+"/api/orchestrators/Waiter", "")
	if r.status != http.StatusAccepted {
		t.Fatalf("start Waiter: %d %s", r.status, r.body)
	}
	waiter := decode[checkStatus](t, r.body)
	waitUntil(t, p, 30*time.Second, "the Waiter to run", func() bool {
		r := do(t, http.MethodGet, waiter.StatusQueryGetURI, "")
		return decode[statusPayload](t, r.body).RuntimeStatus == "Running"
	})

	// A message from a newer version of Durable Task, for the waiter.
	queue := store.ControlQueueName(store.PartitionOf(waiter.ID))
	resp, err := queueService(t).NewQueueClient(queue).EnqueueMessage(ctx,
		fmt.Sprintf(`{"TaskMessage":{"OrchestrationInstance":{"InstanceId":%q},"Event":{"EventType":"FromTheFuture"}}}`, waiter.ID), nil)
	if err != nil {
		t.Fatal(err)
	}
	unknownID := *resp.Messages[0].MessageID
	// A well-formed response for an instance that never existed.
	ghost := history.NewEvent(history.TaskCompleted, time.Now())
	ghost.TaskScheduledID, ghost.Result = 0, `"boo"`
	ghostReceipt, err := store.SendControl(ctx, backend.Message{Event: ghost, Target: history.OrchestrationInstance{InstanceID: "ghost", ExecutionID: "e0"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	injected := time.Now()

	// Echo instances complete while the two messages cycle.
	poisonTable := tableService(t).NewClient(hub + "Poison")
	parked := func() map[string]aztables.EDMEntity {
		rows := map[string]aztables.EDMEntity{}
		pager := poisonTable.NewListEntitiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, raw := range page.Entities {
				var e aztables.EDMEntity
				if err := e.UnmarshalJSON(raw); err != nil {
					t.Fatal(err)
				}
				rows[e.RowKey] = e
			}
		}
		return rows
	}
	echoes := 0
	for i := 0; len(parked()) < 2; i++ {
		if time.Since(injected) > 60*time.Second {
			t.Fatalf("the hostile messages were not parked within 60 s; parked: %v", parked())
		}
		r := do(t, http.MethodPost, p.base+"/api/orchestrators/Echo", fmt.Sprintf(`{"n":%d}`, i))
		if r.status != http.StatusAccepted {
			t.Fatalf("start Echo: %d %s", r.status, r.body)
		}
		final := pollStatus(t, decode[checkStatus](t, r.body).StatusQueryGetURI, 30*time.Second)
		if st := decode[statusPayload](t, final.body); st.RuntimeStatus != "Completed" || string(st.Output) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("Echo %d: %s", i, final.body)
		}
		echoes++
	}
	elapsed := time.Since(injected)
	if echoes == 0 {
		t.Error("no Echo instance completed while the hostile messages were retried")
	}

	rows := parked()
	for _, want := range []struct{ id, queue, reason string }{
		{unknownID, queue, `unknown event type name "FromTheFuture"`},
		{ghostReceipt.MessageID, ghostReceipt.Queue, "its instance has no history"},
	} {
		row, ok := rows[want.id]
		if !ok {
			t.Errorf("message %s was not parked; parked: %v", want.id, rows)
			continue
		}
		reason, _ := row.Properties["Reason"].(string)
		count, _ := row.Properties["DequeueCount"].(aztables.EDMInt64)
		if row.PartitionKey != want.queue || !strings.Contains(reason, want.reason) || count != 3 {
			t.Errorf("parked row %s: queue %s, dequeue count %d, reason %q; want %s, 3, %q", want.id, row.PartitionKey, count, reason, want.queue, want.reason)
		}
	}

	final := pollStatus(t, waiter.StatusQueryGetURI, 30*time.Second)
	st := decode[statusPayload](t, final.body)
	output := decode[string](t, st.Output)
	if st.RuntimeStatus != "Failed" {
		t.Fatalf("the Waiter is %s, want Failed: %s", st.RuntimeStatus, final.body)
	}
	for _, s := range []string{"PoisonMessage: message " + unknownID + " (FromTheFuture) in queue " + queue, "after 3 dequeues", `unknown event type name "FromTheFuture"`} {
		if !strings.Contains(output, s) {
			t.Errorf("failure %q does not name %q", output, s)
		}
	}
	if n := strings.Count(p.out.String(), "parked a poison message"); n != 2 {
		t.Errorf("%d log lines about parked messages, want one per message (2)", n)
	}
	t.Logf("2 hostile messages parked %v after injection; %d Echo instances completed meanwhile", elapsed.Round(100*time.Millisecond), echoes)
}
