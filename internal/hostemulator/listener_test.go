package hostemulator

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
)

// queueService returns a client of Azurite's queues.
func queueService(t *testing.T, conn string) *azqueue.ServiceClient {
	t.Helper()
	acct, err := azurestorage.ParseConnectionString(conn)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azqueue.NewSharedKeyCredential(acct.Name, acct.Key)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := azqueue.NewServiceClientWithSharedKeyCredential(acct.QueueEndpoint+"/", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// queueLen counts the messages of q, visible or not.
func queueLen(t *testing.T, q *azqueue.QueueClient) int32 {
	t.Helper()
	p, err := q.GetProperties(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return *p.ApproximateMessagesCount
}

// waitDeliveries polls h's deliveries until cond holds, failing after 20 s.
func waitDeliveries(t *testing.T, h *Host, what string, cond func([]QueueDelivery) bool) []QueueDelivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds := h.QueueDeliveries()
		if cond(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s; deliveries: %+v", what, ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestQueueListener runs the emulator's queue listeners against Azurite:
// a message on a queue named through an app setting (in another case, as
// the host lower-cases it) invokes its function once and is deleted; a
// message whose function keeps failing is retried and, after the fifth
// dequeue, moved to "<queue>-poison" as it was.
func TestQueueListener(t *testing.T) {
	conn := azuritetest.ConnectionString(t)
	svc := queueService(t, conn)
	suffix := strings.ToLower(azuritetest.HubName(t))
	okQueue, badQueue := "ok"+suffix, "bad"+suffix
	for _, q := range []string{okQueue, badQueue, badQueue + "-poison"} {
		t.Cleanup(func() { svc.DeleteQueue(context.Background(), q, nil) })
	}
	for _, q := range []string{okQueue, badQueue} {
		if _, err := svc.CreateQueue(t.Context(), q, nil); err != nil {
			t.Fatal(err)
		}
	}
	work := `{"bindings":[{"type":"queueTrigger","direction":"in","name":"msg","queueName":"%OK_QUEUE%","connection":"Storage"},{"type":"queue","direction":"out","name":"out","queueName":"done"}]}`
	refuse := `{"bindings":[{"type":"queueTrigger","direction":"in","name":"msg","queueName":"` + strings.ToUpper(badQueue) + `"}]}`
	settings := fmt.Sprintf(`{"Values":{"AzureWebJobsStorage":%q,"OK_QUEUE":%q}}`, conn, okQueue)
	root := newAppRoot(t, hostJSON(), map[string]string{"Work": work, "Refuse": refuse}, settings)
	h := startHost(t, root, Options{QueuePollInterval: 200 * time.Millisecond})

	send := func(queue, text string) {
		t.Helper()
		if _, err := svc.NewQueueClient(queue).EnqueueMessage(t.Context(), base64.StdEncoding.EncodeToString([]byte(text)), nil); err != nil {
			t.Fatal(err)
		}
	}
	send(okQueue, `{"op":"run","id":"q1"}`)
	ds := waitDeliveries(t, h, "the message is delivered", func(ds []QueueDelivery) bool { return len(ds) > 0 })
	if d := ds[0]; d.Function != "Work" || d.Queue != okQueue || d.Text != `{"op":"run","id":"q1"}` || d.DequeueCount != 1 || d.Err != nil || d.Poisoned {
		t.Errorf("delivery %+v", d)
	}
	if n := queueLen(t, svc.NewQueueClient(okQueue)); n != 0 {
		t.Errorf("%s holds %d messages after a successful invocation", okQueue, n)
	}

	send(badQueue, "never works")
	ds = waitDeliveries(t, h, "the failing message is poisoned", func(ds []QueueDelivery) bool {
		return len(ds) > 0 && ds[len(ds)-1].Poisoned
	})
	var attempts []int64
	for _, d := range ds[1:] {
		if d.Function != "Refuse" || d.Err == nil || !strings.Contains(d.Err.Error(), `refused \"never works\" at dequeue`) {
			t.Errorf("delivery %+v", d)
		}
		attempts = append(attempts, d.DequeueCount)
	}
	if fmt.Sprint(attempts) != "[1 2 3 4 5]" {
		t.Errorf("dequeue counts of the failing message: %v, want [1 2 3 4 5]", attempts)
	}
	if n := queueLen(t, svc.NewQueueClient(badQueue)); n != 0 {
		t.Errorf("%s holds %d messages after the move to the poison queue", badQueue, n)
	}
	peek, err := svc.NewQueueClient(badQueue+"-poison").PeekMessages(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(peek.Messages) != 1 || *peek.Messages[0].MessageText != base64.StdEncoding.EncodeToString([]byte("never works")) {
		t.Errorf("poison queue: %+v", peek.Messages)
	}
	if _, err := h.WaitForLog(t.Context(), func(l LogLine) bool {
		return strings.Contains(l.Text, "Moving message to queue '"+badQueue+"-poison'")
	}); err != nil {
		t.Error(err)
	}
}

// TestQueueListenerConfigErrors: a listener that cannot find its queue or
// storage stops the start with the reason.
func TestQueueListenerConfigErrors(t *testing.T) {
	tests := []struct{ fn, settings, want string }{
		{`"queueName":"%MISSING%"`, `{"Values":{"AzureWebJobsStorage":"UseDevelopmentStorage=true"}}`, "app setting MISSING, which is not set"},
		{`"queueName":"q","connection":"Other"`, `{"Values":{}}`, "app setting AzureWebJobsOther or Other is not set"},
	}
	for _, tt := range tests {
		fn := `{"bindings":[{"type":"queueTrigger","direction":"in","name":"msg",` + tt.fn + `}]}`
		root := newAppRoot(t, hostJSON(), map[string]string{"Work": fn}, tt.settings)
		h, err := Start(t.Context(), Options{AppRoot: root, QueuePollInterval: time.Second, ReadinessTimeout: 20 * time.Second})
		if err == nil {
			h.Stop()
			t.Errorf("%s: Start succeeded", tt.fn)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "function Work") {
			t.Errorf("%s: error %q, want %q", tt.fn, err, tt.want)
		}
	}
}
