package azurestorage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/internal/routing"
)

// One app per task hub, the way Durable Task's AppLeaseManager does it
// (DurableTask.AzureStorage/Partitioning/AppLeaseManager.cs):
//
//   - the lease is a container lease on {hub-lower}-applease, 60 s long,
//     renewed every 25 s (AppLeaseOptions' defaults);
//   - its lease ID is derived from the app name, so every worker of one app
//     proposes the same ID and shares the lease: the GUID whose first four
//     bytes are the little-endian FNV-1a hash of the app's UTF-8 name and
//     whose other twelve are zero, i.e. "%08x-0000-0000-0000-000000000000";
//   - the blob {hub-lower}-appleaseinfo in that container records
//     {"OwnerId": lease ID, "DesiredSwapId": lease ID or null}; an app whose
//     ID is DesiredSwapId takes the lease over with a lease change (Durable
//     Task's ForceChangeAppLease).
//
// Durable Task names the app after WEBSITE_SITE_NAME, else DTFX_APP_NAME,
// else "". We also store the holder's app name as blob metadata of the info
// blob so a refusal can name it (Durable Task ignores the metadata).
const (
	// AppLeaseDuration is how long the app lease lasts without renewal.
	AppLeaseDuration = 60 * time.Second
	// AppLeaseRenewInterval is how often Durable Task renews the app lease.
	AppLeaseRenewInterval = 25 * time.Second

	appLeaseInfoAppMetadata = "appname"
	// colOwnerApp is our own column of the Partitions table: the app name
	// of the worker that holds the row, so that a worker of another app can
	// tell it is not one of its own. Durable Task does not read it (and
	// drops it when it rewrites the row).
	colOwnerApp = "OwnerApp"
)

// AppLeaseID returns the app lease ID Durable Task derives from an app name.
func AppLeaseID(app string) string {
	return fmt.Sprintf("%08x-0000-0000-0000-000000000000", routing.FNV1a32(app))
}

// AppLeaseContainerName returns the container whose lease is the app
// lease, e.g. "xyz-applease".
func (s *Store) AppLeaseContainerName() string { return strings.ToLower(s.hub) + "-applease" }

// AppLeaseInfoBlobName returns the blob that records the app lease's owner.
func (s *Store) AppLeaseInfoBlobName() string { return strings.ToLower(s.hub) + "-appleaseinfo" }

// blobLeasesContainerName is the container of Durable Task's blob partition
// manager (Durable Functions 2.x's default): blobs default/{control queue},
// each leased by the worker that owns the partition, and taskhub.json.
func (s *Store) blobLeasesContainerName() string { return strings.ToLower(s.hub) + "-leases" }

// AppName returns the app name this store takes the app lease for.
func (s *Store) AppName() string { return s.appName }

// appLeaseInfo is the content of the app lease info blob.
type appLeaseInfo struct {
	OwnerID       string  `json:"OwnerId"`
	DesiredSwapID *string `json:"DesiredSwapId"`
}

// createAppLease creates the app lease container and its info blob ("{}",
// as Durable Task writes it) if missing.
func (s *Store) createAppLease(ctx context.Context) error {
	if _, err := s.appLease.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return fmt.Errorf("azurestorage: create container %s: %w", s.AppLeaseContainerName(), err)
	}
	_, err := s.appLease.NewBlockBlobClient(s.AppLeaseInfoBlobName()).Upload(ctx, nopCloser("{}"), &blockblob.UploadOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	})
	if err != nil && !bloberror.HasCode(err, bloberror.BlobAlreadyExists) && !isStatus(err, http.StatusConflict) && !isStatus(err, http.StatusPreconditionFailed) {
		return fmt.Errorf("azurestorage: create blob %s/%s: %w", s.AppLeaseContainerName(), s.AppLeaseInfoBlobName(), err)
	}
	return nil
}

// readAppLeaseInfo returns the info blob's content and the app name stored
// with it (zero values if the blob is missing or not JSON).
func (s *Store) readAppLeaseInfo(ctx context.Context) (appLeaseInfo, string, error) {
	var info appLeaseInfo
	resp, err := s.appLease.NewBlobClient(s.AppLeaseInfoBlobName()).DownloadStream(ctx, nil)
	if err != nil {
		if isStatus(err, http.StatusNotFound) {
			return info, "", nil
		}
		return info, "", fmt.Errorf("azurestorage: read blob %s/%s: %w", s.AppLeaseContainerName(), s.AppLeaseInfoBlobName(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return info, "", fmt.Errorf("azurestorage: read blob %s/%s: %w", s.AppLeaseContainerName(), s.AppLeaseInfoBlobName(), err)
	}
	if err := json.Unmarshal(bytes.TrimPrefix(b, []byte("\ufeff")), &info); err != nil {
		s.log.Warn("the app lease info blob is not JSON; ignoring it", "blob", s.AppLeaseInfoBlobName(), "err", err)
		return appLeaseInfo{}, "", nil
	}
	app := ""
	for k, v := range resp.Metadata {
		if strings.EqualFold(k, appLeaseInfoAppMetadata) && v != nil {
			app = *v
		}
	}
	return info, app, nil
}

// writeAppLeaseInfo records this app as the owner. Like Durable Task, a
// failure is only logged: the lease itself is what counts.
func (s *Store) writeAppLeaseInfo(ctx context.Context, info appLeaseInfo) {
	b, err := json.Marshal(info)
	if err != nil {
		return
	}
	_, err = s.appLease.NewBlockBlobClient(s.AppLeaseInfoBlobName()).Upload(ctx, nopCloser(string(b)), &blockblob.UploadOptions{
		Metadata: map[string]*string{appLeaseInfoAppMetadata: to.Ptr(s.appName)},
	})
	if err != nil {
		s.log.Warn("could not record this app as the app lease owner", "blob", s.AppLeaseInfoBlobName(), "err", err)
	}
}

func (s *Store) appLeaseClient(id string) (*lease.ContainerClient, error) {
	return lease.NewContainerClient(s.appLease, &lease.ContainerClientOptions{LeaseID: to.Ptr(id)})
}

// AcquireAppLease takes the hub's app lease for this store's app name (see
// the comment on AppLeaseDuration). A lease held by another app is a
// *backend.HubInUseError naming it.
func (s *Store) AcquireAppLease(ctx context.Context) error {
	id := AppLeaseID(s.appName)
	info, holderApp, err := s.readAppLeaseInfo(ctx)
	if err != nil {
		return err
	}
	lc, err := s.appLeaseClient(id)
	if err != nil {
		return fmt.Errorf("azurestorage: app lease client: %w", err)
	}
	acquired := false
	if info.DesiredSwapID != nil && *info.DesiredSwapID == id && info.OwnerID != "" && info.OwnerID != id {
		// An operator asked for this app to take over (ForceChangeAppLease).
		old, err := s.appLeaseClient(info.OwnerID)
		if err == nil {
			if _, err = old.ChangeLease(ctx, id, nil); err == nil {
				acquired = true
				s.writeAppLeaseInfo(ctx, appLeaseInfo{OwnerID: id})
				s.log.Info("took over the app lease as requested by DesiredSwapId", "container", s.AppLeaseContainerName(), "from", info.OwnerID)
			}
		}
		if err != nil {
			s.log.Warn("could not take over the app lease as requested by DesiredSwapId; trying to acquire it", "from", info.OwnerID, "err", err)
		}
	}
	if !acquired {
		_, err = lc.AcquireLease(ctx, int32(AppLeaseDuration/time.Second), nil)
		switch {
		case err == nil:
		case bloberror.HasCode(err, bloberror.LeaseAlreadyPresent) || isStatus(err, http.StatusConflict):
			return s.appLeaseHeld(info.OwnerID, holderApp)
		case bloberror.HasCode(err, bloberror.ContainerNotFound):
			return fmt.Errorf("azurestorage: acquire the app lease: container %s does not exist (create the task hub first): %w",
				s.AppLeaseContainerName(), backend.ErrNotFound)
		default:
			return fmt.Errorf("azurestorage: acquire the app lease on container %s: %w", s.AppLeaseContainerName(), err)
		}
		if info.OwnerID != id || holderApp != s.appName {
			info.OwnerID = id
			s.writeAppLeaseInfo(ctx, info)
		}
	}
	return nil
}

// appLeaseHeld builds the refusal for an app lease held by another app.
func (s *Store) appLeaseHeld(ownerID, ownerApp string) error {
	holder := "another app"
	switch {
	case ownerID != "" && ownerApp != "" && AppLeaseID(ownerApp) == ownerID:
		holder = fmt.Sprintf("app %q (lease ID %s)", ownerApp, ownerID)
	case ownerID != "":
		holder = "the app with lease ID " + ownerID
	}
	return &backend.HubInUseError{
		Hub:    s.hub,
		Lease:  "the app lease on blob container " + s.AppLeaseContainerName(),
		Holder: holder,
		App:    s.appName,
	}
}

// RenewAppLease renews this app's lease. A lease now held under another ID,
// or no longer leased, is lost (backend.ErrHubInUse).
func (s *Store) RenewAppLease(ctx context.Context) error {
	lc, err := s.appLeaseClient(AppLeaseID(s.appName))
	if err != nil {
		return fmt.Errorf("azurestorage: app lease client: %w", err)
	}
	_, err = lc.RenewLease(ctx, nil)
	if err == nil {
		return nil
	}
	if isStatus(err, http.StatusConflict) || isStatus(err, http.StatusPreconditionFailed) {
		info, app, rerr := s.readAppLeaseInfo(ctx)
		if rerr != nil {
			return fmt.Errorf("azurestorage: renew the app lease: %w (%v)", backend.ErrHubInUse, err)
		}
		return s.appLeaseHeld(info.OwnerID, app)
	}
	return fmt.Errorf("azurestorage: renew the app lease on container %s: %w", s.AppLeaseContainerName(), err)
}

// CheckPartitionLeases reports live partition leases of workers that
// belong to another app, as far as storage tells, as a
// *backend.HubInUseError: blob leases of Durable Task's blob partition
// manager in {hub-lower}-leases (any live one: their app is unknown), and
// {hub}Partitions rows whose OwnerApp names another app.
func (s *Store) CheckPartitionLeases(ctx context.Context) error {
	if err := s.checkBlobPartitionLeases(ctx); err != nil {
		return err
	}
	leases, apps, err := s.readPartitionApps(ctx)
	if err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			return nil
		}
		return err
	}
	t := time.Now()
	for _, l := range leases {
		app := apps[l.QueueName]
		if l.CurrentOwner == "" || !t.Before(l.ExpiresAt) || app == "" || app == s.appName {
			continue
		}
		return &backend.HubInUseError{
			Hub:    s.hub,
			Lease:  fmt.Sprintf("partition %s (row of table %s, lease valid until %s)", l.QueueName, s.PartitionsTableName(), l.ExpiresAt.UTC().Format(time.RFC3339)),
			Holder: fmt.Sprintf("worker %q of app %q", l.CurrentOwner, app),
			App:    s.appName,
		}
	}
	return nil
}

// readPartitionApps reads the Partitions table with our OwnerApp column.
func (s *Store) readPartitionApps(ctx context.Context) ([]backend.PartitionLease, map[string]string, error) {
	rows, err := s.queryPartition(ctx, s.leases, "", "")
	if err != nil {
		return nil, nil, tableError("read partitions", err)
	}
	var leases []backend.PartitionLease
	apps := map[string]string{}
	for _, r := range rows {
		l, err := s.leaseFromRow(r)
		if err != nil {
			return nil, nil, err
		}
		if app, err := r.str(colOwnerApp); err == nil && app != "" {
			apps[l.QueueName] = app
		}
		leases = append(leases, l)
	}
	return leases, apps, nil
}

// checkBlobPartitionLeases refuses a hub that Durable Task's blob partition
// manager is processing: any leased blob under default/ in {hub-lower}-leases.
func (s *Store) checkBlobPartitionLeases(ctx context.Context) error {
	prefix := "default/"
	pager := s.blobLeases.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if bloberror.HasCode(err, bloberror.ContainerNotFound) || isStatus(err, http.StatusNotFound) {
				return nil
			}
			return fmt.Errorf("azurestorage: list blob leases in %s: %w", s.blobLeasesContainerName(), err)
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil || item.Properties == nil || item.Properties.LeaseState == nil || *item.Properties.LeaseState != lease.StateTypeLeased {
				continue
			}
			holder := "a worker using Durable Task's blob partition manager (Durable Functions 2.x)"
			if owner := s.blobLeaseOwner(ctx, *item.Name); owner != "" {
				holder = fmt.Sprintf("worker %q (Durable Task blob partition manager)", owner)
			}
			return &backend.HubInUseError{
				Hub:    s.hub,
				Lease:  fmt.Sprintf("the blob lease on %s/%s", s.blobLeasesContainerName(), *item.Name),
				Holder: holder,
				App:    s.appName,
			}
		}
	}
	return nil
}

// blobLeaseOwner reads the Owner of a Durable Task blob partition lease.
func (s *Store) blobLeaseOwner(ctx context.Context, name string) string {
	resp, err := s.blobLeases.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return ""
	}
	var v struct {
		Owner string `json:"Owner"`
	}
	if json.Unmarshal(bytes.TrimPrefix(b, []byte("\ufeff")), &v) != nil {
		return ""
	}
	return v.Owner
}

// blobTaskHubPartitionCount reads PartitionCount from taskhub.json of
// Durable Task's blob partition manager (0 if there is none).
func (s *Store) blobTaskHubPartitionCount(ctx context.Context) (int, error) {
	resp, err := s.blobLeases.NewBlobClient("taskhub.json").DownloadStream(ctx, nil)
	if err != nil {
		if isStatus(err, http.StatusNotFound) {
			return 0, nil
		}
		return 0, fmt.Errorf("azurestorage: read %s/taskhub.json: %w", s.blobLeasesContainerName(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, fmt.Errorf("azurestorage: read %s/taskhub.json: %w", s.blobLeasesContainerName(), err)
	}
	var v struct {
		PartitionCount int `json:"PartitionCount"`
	}
	if err := json.Unmarshal(bytes.TrimPrefix(b, []byte("\ufeff")), &v); err != nil {
		return 0, nil
	}
	return v.PartitionCount, nil
}

// deleteAppLease deletes the app lease container, breaking its lease first
// (deleting a hub is meant to end every app's use of it).
func (s *Store) deleteAppLease(ctx context.Context) error {
	lc, err := lease.NewContainerClient(s.appLease, nil)
	if err == nil {
		_, err = lc.BreakLease(ctx, &lease.ContainerBreakOptions{BreakPeriod: to.Ptr(int32(0))})
		if err != nil && !bloberror.HasCode(err, bloberror.ContainerNotFound) && !bloberror.HasCode(err, bloberror.LeaseNotPresentWithLeaseOperation) && !isStatus(err, http.StatusConflict) {
			return fmt.Errorf("azurestorage: break the app lease on %s: %w", s.AppLeaseContainerName(), err)
		}
	}
	if _, err := s.appLease.Delete(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return fmt.Errorf("azurestorage: delete container %s: %w", s.AppLeaseContainerName(), err)
	}
	return nil
}

func nopCloser(s string) io.ReadSeekCloser { return streaming.NopCloser(strings.NewReader(s)) }
