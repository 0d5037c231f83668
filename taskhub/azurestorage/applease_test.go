package azurestorage

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/backend"
)

func TestAppLeaseID(t *testing.T) {
	// FNV-1a 32-bit test vectors; Durable Task puts the hash's
	// little-endian bytes first in a GUID of otherwise zero bytes.
	for _, tc := range []struct{ app, want string }{
		{"", "811c9dc5-0000-0000-0000-000000000000"},
		{"a", "e40c292c-0000-0000-0000-000000000000"},
		{"foobar", "bf9cf968-0000-0000-0000-000000000000"},
	} {
		if got := AppLeaseID(tc.app); got != tc.want {
			t.Errorf("AppLeaseID(%q) = %s, want %s", tc.app, got, tc.want)
		}
	}
}

// storeFor opens another store on hub with the given app name and
// partition count (0 = default).
func storeFor(t *testing.T, hub, app string, partitions int) *Store {
	t.Helper()
	s, err := New(Options{ConnectionString: azuritetest.ConnectionString(t), HubName: hub, AppName: app, PartitionCount: partitions})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hubFor creates a hub for app and deletes it when the test ends.
func hubFor(t *testing.T, app string) *Store {
	t.Helper()
	s := storeFor(t, azuritetest.HubName(t), app, 0)
	if err := s.CreateTaskHub(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.DeleteTaskHub(context.Background()); err != nil {
			t.Errorf("DeleteTaskHub: %v", err)
		}
	})
	return s
}

func readInfo(t *testing.T, s *Store) (appLeaseInfo, string) {
	t.Helper()
	info, app, err := s.readAppLeaseInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info, app
}

func TestAppLeaseOneAppPerHub(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := hubFor(t, "app-one")
	if info, _ := readInfo(t, a); info.OwnerID != "" {
		t.Fatalf("fresh info blob %+v, want {}", info)
	}
	if err := a.AcquireAppLease(ctx); err != nil {
		t.Fatalf("first worker of app-one: %v", err)
	}
	// A second worker of the same app shares the lease.
	if err := storeFor(t, a.hub, "app-one", 0).AcquireAppLease(ctx); err != nil {
		t.Fatalf("second worker of app-one: %v", err)
	}
	if info, app := readInfo(t, a); info.OwnerID != AppLeaseID("app-one") || app != "app-one" {
		t.Fatalf("info blob %+v (app %q), want OwnerId %s", info, app, AppLeaseID("app-one"))
	}

	two := storeFor(t, a.hub, "app-two", 0)
	err := two.AcquireAppLease(ctx)
	var inUse *backend.HubInUseError
	if !errors.Is(err, backend.ErrHubInUse) || !errors.As(err, &inUse) {
		t.Fatalf("app-two: %v, want a HubInUseError", err)
	}
	for _, want := range []string{a.hub, a.AppLeaseContainerName(), `app "app-one"`, `"app-two"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name %s", err, want)
		}
	}
	if err := a.RenewAppLease(ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if err := two.RenewAppLease(ctx); !errors.Is(err, backend.ErrHubInUse) {
		t.Fatalf("renew by app-two, which never held it: %v, want ErrHubInUse", err)
	}

	// An operator asks for app-two to take over (Durable Task's DesiredSwapId).
	swap := appLeaseInfo{OwnerID: AppLeaseID("app-one"), DesiredSwapID: to.Ptr(AppLeaseID("app-two"))}
	a.writeAppLeaseInfo(ctx, swap)
	if err := two.AcquireAppLease(ctx); err != nil {
		t.Fatalf("app-two taking over as desired: %v", err)
	}
	err = a.RenewAppLease(ctx)
	if !errors.Is(err, backend.ErrHubInUse) || !strings.Contains(err.Error(), `app "app-two"`) {
		t.Fatalf("renew by app-one after the swap: %v, want ErrHubInUse naming app-two", err)
	}
}

func TestAppLeaseRefusesForeignPartitionLeases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := hubFor(t, "app-one")
	leases, err := a.ReadPartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A worker of app-one holds partition 2 without the app lease (an app
	// that does not use it, or whose app lease ran out).
	l := leases[2]
	now := time.Now().UTC()
	l.CurrentOwner, l.OwnedSince, l.LastRenewal, l.ExpiresAt = "w1", now, now, now.Add(time.Minute)
	if _, err := a.WritePartition(ctx, l); err != nil {
		t.Fatal(err)
	}
	two := storeFor(t, a.hub, "app-two", 0)
	if err := two.AcquireAppLease(ctx); err != nil {
		t.Fatalf("app-two taking the free app lease: %v", err)
	}
	err = two.CheckPartitionLeases(ctx)
	if !errors.Is(err, backend.ErrHubInUse) || !strings.Contains(err.Error(), `worker "w1" of app "app-one"`) ||
		!strings.Contains(err.Error(), a.ControlQueueName(2)) {
		t.Fatalf("app-two: %v, want a refusal naming worker w1 of app-one and the partition", err)
	}
	// Its own workers' rows do not stop app-one.
	if err := storeFor(t, a.hub, "app-one", 0).CheckPartitionLeases(ctx); err != nil {
		t.Fatalf("app-one: %v", err)
	}
	// Nor do expired or released rows stop app-two.
	leases, _ = a.ReadPartitions(ctx)
	l = leases[2]
	l.CurrentOwner, l.ExpiresAt = "", time.Now().UTC()
	if _, err := a.WritePartition(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := two.CheckPartitionLeases(ctx); err != nil {
		t.Fatalf("app-two after the release: %v", err)
	}
}

func TestAppLeaseRefusesBlobPartitionManager(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := hubFor(t, "")
	leases := a.blobLeases
	if _, err := leases.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bl, _ := lease.NewBlobClient(leases.NewBlobClient("default/"+a.ControlQueueName(0)), nil)
		bl.BreakLease(context.Background(), &lease.BlobBreakOptions{BreakPeriod: to.Ptr(int32(0))})
		if _, err := leases.Delete(context.Background(), nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerNotFound) {
			t.Errorf("delete %s: %v", a.blobLeasesContainerName(), err)
		}
	})
	name := "default/" + a.ControlQueueName(0)
	body, _ := json.Marshal(map[string]any{"PartitionId": a.ControlQueueName(0), "Owner": "df2-worker", "Epoch": 1})
	if _, err := leases.NewBlockBlobClient(name).Upload(ctx, nopCloser(string(body)), nil); err != nil {
		t.Fatal(err)
	}
	// Not leased: nobody processes the partition.
	if err := a.CheckPartitionLeases(ctx); err != nil {
		t.Fatalf("with an unleased blob partition lease: %v", err)
	}
	bl, err := lease.NewBlobClient(leases.NewBlobClient(name), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bl.AcquireLease(ctx, 60, nil); err != nil {
		t.Fatal(err)
	}
	err = a.CheckPartitionLeases(ctx)
	if !errors.Is(err, backend.ErrHubInUse) || !strings.Contains(err.Error(), `worker "df2-worker"`) || !strings.Contains(err.Error(), name) {
		t.Fatalf("with a leased blob partition lease: %v, want a refusal naming df2-worker and %s", err, name)
	}
}

func TestLayoutMismatchIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := hubFor(t, "") // 4 partitions
	for _, tc := range []struct {
		partitions int
		evidence   string
	}{
		{2, "control queues " + a.ControlQueueName(0) + "..03"},
		{6, "rows " + a.ControlQueueName(0) + "..03"},
	} {
		err := storeFor(t, a.hub, "", tc.partitions).CreateTaskHub(ctx)
		var lm *LayoutMismatchError
		if !errors.Is(err, backend.ErrLayoutMismatch) || !errors.As(err, &lm) || lm.Found != 4 || lm.Configured != tc.partitions {
			t.Fatalf("%d partitions on a hub of 4: %v, want a LayoutMismatchError (found 4)", tc.partitions, err)
		}
		if !strings.Contains(err.Error(), tc.evidence) || !strings.Contains(err.Error(), "configure 4 partitions") {
			t.Errorf("error %q lacks %q or the fix", err, tc.evidence)
		}
	}
	if got := a.listQueues(t); len(got) != 6 {
		t.Errorf("queues after refused creations: %v, want the 4 control queues, the work-item queue and the wake queue", got)
	}
	if err := storeFor(t, a.hub, "", 4).CreateTaskHub(ctx); err != nil {
		t.Fatalf("the right count: %v", err)
	}
}

func TestLayoutHalfCreatedHubPasses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storeFor(t, azuritetest.HubName(t), "", 4)
	t.Cleanup(func() { s.DeleteTaskHub(context.Background()) })
	// An earlier creation stopped after two queues.
	for i := range 2 {
		if _, err := s.queueService.CreateQueue(ctx, s.ControlQueueName(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateTaskHub(ctx); err != nil {
		t.Fatalf("half-created hub: %v", err)
	}
	if got := s.listQueues(t); len(got) != 6 {
		t.Errorf("queues %v, want 6", got)
	}
}

func TestLayoutBlobTaskHubInfo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storeFor(t, azuritetest.HubName(t), "", 4)
	t.Cleanup(func() {
		s.DeleteTaskHub(context.Background())
		s.blobLeases.Delete(context.Background(), nil)
	})
	if _, err := s.blobLeases.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	info := `{"TaskHubName":"` + s.hub + `","CreatedAt":"2024-01-01T00:00:00Z","PartitionCount":8}`
	if _, err := s.blobLeases.NewBlockBlobClient("taskhub.json").Upload(ctx, nopCloser(info), nil); err != nil {
		t.Fatal(err)
	}
	err := s.CreateTaskHub(ctx)
	var lm *LayoutMismatchError
	if !errors.As(err, &lm) || lm.Found != 8 || !strings.Contains(err.Error(), "taskhub.json") {
		t.Fatalf("CreateTaskHub = %v, want a mismatch naming taskhub.json's 8", err)
	}
	if got := s.listQueues(t); len(got) != 0 {
		t.Errorf("a refused CreateTaskHub created queues: %v", got)
	}
}

// blobText reads a blob of container c.
func blobText(t *testing.T, c *container.Client, name string) string {
	t.Helper()
	resp, err := c.NewBlobClient(name).DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppLeaseInfoIsDurableTaskJSON(t *testing.T) {
	t.Parallel()
	a := hubFor(t, "my-app")
	if err := a.AcquireAppLease(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := blobText(t, a.appLease, a.AppLeaseInfoBlobName())
	if want := `{"OwnerId":"` + AppLeaseID("my-app") + `","DesiredSwapId":null}`; got != want {
		t.Errorf("info blob %s, want %s", got, want)
	}
	props, err := a.appLease.GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if props.LeaseState == nil || *props.LeaseState != lease.StateTypeLeased || props.LeaseDuration == nil || *props.LeaseDuration != lease.DurationTypeFixed {
		t.Errorf("container lease state %v duration %v, want a fixed lease", props.LeaseState, props.LeaseDuration)
	}
}
