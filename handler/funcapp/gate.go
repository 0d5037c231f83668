package funcapp

import (
	"context"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// gatedBackend is the client's view of the task hub: until the engine is
// ready (the hub exists, this app holds it), every storage call fails at
// once with a *backend.UnavailableError, which the management API and
// client functions answer with 503 and Retry-After, instead of waiting for
// storage that is not there, or writing to a hub this app may not use.
type gatedBackend struct {
	backend.Backend
	ready func(ctx context.Context) error
}

// CreateTaskHub is backend.Backend.CreateTaskHub once the engine is ready.
func (g gatedBackend) CreateTaskHub(ctx context.Context) error {
	if err := g.ready(ctx); err != nil {
		return err
	}
	return g.Backend.CreateTaskHub(ctx)
}

// DeleteTaskHub is backend.Backend.DeleteTaskHub once the engine is ready.
func (g gatedBackend) DeleteTaskHub(ctx context.Context) error {
	if err := g.ready(ctx); err != nil {
		return err
	}
	return g.Backend.DeleteTaskHub(ctx)
}

// SendControl is backend.Backend.SendControl once the engine is ready.
func (g gatedBackend) SendControl(ctx context.Context, msg backend.Message, delay time.Duration) (backend.Receipt, error) {
	if err := g.ready(ctx); err != nil {
		return backend.Receipt{}, err
	}
	return g.Backend.SendControl(ctx, msg, delay)
}

// SendWake is backend.Backend.SendWake once the engine is ready.
func (g gatedBackend) SendWake(ctx context.Context, reason string, delay time.Duration) (backend.Receipt, error) {
	if err := g.ready(ctx); err != nil {
		return backend.Receipt{}, err
	}
	return g.Backend.SendWake(ctx, reason, delay)
}

// ReceiveControl is backend.Backend.ReceiveControl once the engine is ready.
func (g gatedBackend) ReceiveControl(ctx context.Context, partition, max int, visibility time.Duration) ([]backend.Received, []backend.Undecodable, error) {
	if err := g.ready(ctx); err != nil {
		return nil, nil, err
	}
	return g.Backend.ReceiveControl(ctx, partition, max, visibility)
}

// SendWorkItem is backend.Backend.SendWorkItem once the engine is ready.
func (g gatedBackend) SendWorkItem(ctx context.Context, msg backend.Message, delay time.Duration) (backend.Receipt, error) {
	if err := g.ready(ctx); err != nil {
		return backend.Receipt{}, err
	}
	return g.Backend.SendWorkItem(ctx, msg, delay)
}

// ReceiveWorkItems is backend.Backend.ReceiveWorkItems once the engine is ready.
func (g gatedBackend) ReceiveWorkItems(ctx context.Context, max int, visibility time.Duration) ([]backend.Received, []backend.Undecodable, error) {
	if err := g.ready(ctx); err != nil {
		return nil, nil, err
	}
	return g.Backend.ReceiveWorkItems(ctx, max, visibility)
}

// ControlQueueLength is backend.Backend.ControlQueueLength once the engine is ready.
func (g gatedBackend) ControlQueueLength(ctx context.Context, partition int) (int64, error) {
	if err := g.ready(ctx); err != nil {
		return 0, err
	}
	return g.Backend.ControlQueueLength(ctx, partition)
}

// WorkItemQueueLength is backend.Backend.WorkItemQueueLength once the engine is ready.
func (g gatedBackend) WorkItemQueueLength(ctx context.Context) (int64, error) {
	if err := g.ready(ctx); err != nil {
		return 0, err
	}
	return g.Backend.WorkItemQueueLength(ctx)
}

// DeleteMessage is backend.Backend.DeleteMessage once the engine is ready.
func (g gatedBackend) DeleteMessage(ctx context.Context, r backend.Receipt) error {
	if err := g.ready(ctx); err != nil {
		return err
	}
	return g.Backend.DeleteMessage(ctx, r)
}

// SetVisibility is backend.Backend.SetVisibility once the engine is ready.
func (g gatedBackend) SetVisibility(ctx context.Context, r backend.Receipt, d time.Duration) (backend.Receipt, error) {
	if err := g.ready(ctx); err != nil {
		return backend.Receipt{}, err
	}
	return g.Backend.SetVisibility(ctx, r, d)
}

// ParkPoison is backend.Backend.ParkPoison once the engine is ready.
func (g gatedBackend) ParkPoison(ctx context.Context, p backend.Poison) error {
	if err := g.ready(ctx); err != nil {
		return err
	}
	return g.Backend.ParkPoison(ctx, p)
}

// LoadHistory is backend.Backend.LoadHistory once the engine is ready.
func (g gatedBackend) LoadHistory(ctx context.Context, instanceID string) (backend.History, error) {
	if err := g.ready(ctx); err != nil {
		return backend.History{}, err
	}
	return g.Backend.LoadHistory(ctx, instanceID)
}

// AppendHistory is backend.Backend.AppendHistory once the engine is ready.
func (g gatedBackend) AppendHistory(ctx context.Context, instanceID, executionID string, from int, events []history.Event, etag string) (string, error) {
	if err := g.ready(ctx); err != nil {
		return "", err
	}
	return g.Backend.AppendHistory(ctx, instanceID, executionID, from, events, etag)
}

// GetInstance is backend.Backend.GetInstance once the engine is ready.
func (g gatedBackend) GetInstance(ctx context.Context, instanceID string, withInput bool) (backend.InstanceState, error) {
	if err := g.ready(ctx); err != nil {
		return backend.InstanceState{}, err
	}
	return g.Backend.GetInstance(ctx, instanceID, withInput)
}

// CreateInstance is backend.Backend.CreateInstance once the engine is ready.
func (g gatedBackend) CreateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	if err := g.ready(ctx); err != nil {
		return "", err
	}
	return g.Backend.CreateInstance(ctx, st)
}

// UpdateInstance is backend.Backend.UpdateInstance once the engine is ready.
func (g gatedBackend) UpdateInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	if err := g.ready(ctx); err != nil {
		return "", err
	}
	return g.Backend.UpdateInstance(ctx, st)
}

// MergeInstance is backend.Backend.MergeInstance once the engine is ready.
func (g gatedBackend) MergeInstance(ctx context.Context, st backend.InstanceState) (string, error) {
	if err := g.ready(ctx); err != nil {
		return "", err
	}
	return g.Backend.MergeInstance(ctx, st)
}

// QueryInstances is backend.Backend.QueryInstances once the engine is ready.
func (g gatedBackend) QueryInstances(ctx context.Context, q backend.InstanceQuery) ([]backend.InstanceState, string, error) {
	if err := g.ready(ctx); err != nil {
		return nil, "", err
	}
	return g.Backend.QueryInstances(ctx, q)
}

// PurgeInstance is backend.Backend.PurgeInstance once the engine is ready.
func (g gatedBackend) PurgeInstance(ctx context.Context, instanceID string) error {
	if err := g.ready(ctx); err != nil {
		return err
	}
	return g.Backend.PurgeInstance(ctx, instanceID)
}

// ReadPartitions is backend.Backend.ReadPartitions once the engine is ready.
func (g gatedBackend) ReadPartitions(ctx context.Context) ([]backend.PartitionLease, error) {
	if err := g.ready(ctx); err != nil {
		return nil, err
	}
	return g.Backend.ReadPartitions(ctx)
}

// WritePartition is backend.Backend.WritePartition once the engine is ready.
func (g gatedBackend) WritePartition(ctx context.Context, lease backend.PartitionLease) (backend.PartitionLease, error) {
	if err := g.ready(ctx); err != nil {
		return lease, err
	}
	return g.Backend.WritePartition(ctx, lease)
}

// AcquireAppLease is backend.Backend.AcquireAppLease once the engine is ready.
func (g gatedBackend) AcquireAppLease(ctx context.Context) error {
	if err := g.ready(ctx); err != nil {
		return err
	}
	return g.Backend.AcquireAppLease(ctx)
}

// RenewAppLease is backend.Backend.RenewAppLease once the engine is ready.
func (g gatedBackend) RenewAppLease(ctx context.Context) error {
	if err := g.ready(ctx); err != nil {
		return err
	}
	return g.Backend.RenewAppLease(ctx)
}

// CheckPartitionLeases is backend.Backend.CheckPartitionLeases once the engine is ready.
func (g gatedBackend) CheckPartitionLeases(ctx context.Context) error {
	if err := g.ready(ctx); err != nil {
		return err
	}
	return g.Backend.CheckPartitionLeases(ctx)
}
