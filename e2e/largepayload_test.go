package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

// TestLargePayloadRoundTripAndPurge sends a 1 MB input through an
// orchestration that returns it, reads it back, then purges the instance
// and checks that no trace is left in tables, queues or blobs.
func TestLargePayloadRoundTripAndPurge(t *testing.T) {
	hub := azuritetest.HubName(t)
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, hub, "CRASHTEST_DIR="+t.TempDir())...)

	var sb strings.Builder
	for i := 0; sb.Len() < 1<<20; i++ {
		fmt.Fprintf(&sb, "line %d of a large payload, with varied text %x; ", i, i*7919)
	}
	input := `{"blob":"` + sb.String() + `"}`
	cs := startVia(t, p.base, "Echo/large-1", input)
	final := pollStatus(t, cs.StatusQueryGetURI, 60*time.Second)
	st := decode[statusPayload](t, final.body)
	if st.RuntimeStatus != "Completed" || string(st.Output) != input || string(st.Input) != input {
		t.Fatalf("status %s, output %d bytes (want %d), input %d bytes", st.RuntimeStatus, len(st.Output), len(input), len(st.Input))
	}
	r := do(t, http.MethodGet, p.base+"/api/durabletask/instances/large-1?showHistory=true&showHistoryOutput=true", "")
	if !strings.Contains(string(r.body), sb.String()[:1000]) || len(r.body) < 3<<20 {
		t.Fatalf("history with outputs lacks the payload (%d bytes)", len(r.body))
	}

	ctx := context.Background()
	acct := storageAccount(t)
	container := strings.ToLower(hub) + "-largemessages"
	blobs := func() []string {
		cred, err := azblob.NewSharedKeyCredential(acct.Name, acct.Key)
		if err != nil {
			t.Fatal(err)
		}
		bc, err := azblob.NewClientWithSharedKeyCredential(acct.BlobEndpoint, cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		pager := bc.NewListBlobsFlatPager(container, &azblob.ListBlobsFlatOptions{Prefix: to.Ptr("large-1/")})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range page.Segment.BlobItems {
				names = append(names, *b.Name)
			}
		}
		return names
	}
	if len(blobs()) == 0 {
		t.Fatal("a 1 MB payload left no blob in the large-message container")
	}

	r = do(t, http.MethodDelete, p.base+"/api/durabletask/instances/large-1", "")
	if r.status != http.StatusOK {
		t.Fatalf("purge: %d %s", r.status, r.body)
	}
	if left := blobs(); len(left) != 0 {
		t.Fatalf("purge left blobs: %v", left)
	}
	svc := tableService(t)
	for _, table := range []string{hub + "Instances", hub + "History"} {
		filter := "PartitionKey eq 'large-1'"
		pager := svc.NewClient(table).NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Entities) > 0 {
				t.Fatalf("purge left %d rows in %s", len(page.Entities), table)
			}
		}
	}
	qsvc := queueService(t)
	lower := strings.ToLower(hub)
	for _, q := range []string{lower + "-control-00", lower + "-control-01", lower + "-control-02", lower + "-control-03", lower + "-workitems"} {
		props, err := qsvc.NewQueueClient(q).GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := props.ApproximateMessagesCount; n != nil && *n != 0 {
			t.Fatalf("queue %s still holds %d messages", q, *n)
		}
	}
}
