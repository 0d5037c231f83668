// Package azurestorage implements backend.Backend on Azure Storage (or the
// Azurite emulator) with the Durable Task Azure Storage layout, so that
// tools which read a Durable Task hub recognise ours.
//
// For a task hub "xyz" with four partitions it uses:
//
//   - control queues xyz-control-00 .. xyz-control-03 and the work-item
//     queue xyz-workitems (lower-cased hub name), holding MessageData JSON;
//   - tables xyzHistory (one row per event plus a "sentinel" row per
//     instance), xyzInstances (one status row per instance) and
//     xyzPartitions (one ownership row per control queue);
//   - table xyzPoison, our own, for messages the engine gave up on (see
//     ParkPoison);
//   - blob container xyz-largemessages, created on the first payload too
//     large for a queue message or a table column (see largeblob.go);
//   - blob container xyz-applease, whose lease is Durable Task's app lease,
//     and its blob xyz-appleaseinfo (see applease.go).
//
// Dates are stored with 100-nanosecond precision, the precision of .NET and
// of Table storage; finer fractions are truncated.
package azurestorage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"go.opentelemetry.io/otel/metric"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/internal/routing"
)

// DefaultPartitionCount is the number of control queues when
// Options.PartitionCount is 0, as in Durable Task.
const DefaultPartitionCount = 4

// MaxPartitionCount is the largest partition count Durable Task allows.
const MaxPartitionCount = 16

// Options configures a Store.
type Options struct {
	// ConnectionString is an AzureWebJobsStorage-style connection string;
	// see ParseConnectionString.
	ConnectionString string
	// Credential, when set, authorises every request with a bearer token
	// (Microsoft Entra ID, e.g. a managed identity) instead of an account
	// key; Endpoints then name the services and ConnectionString must be
	// empty.
	Credential azcore.TokenCredential
	// Endpoints are the service URLs used with Credential; each must pass
	// ValidateEndpoint.
	Endpoints Endpoints
	// HubName is the task hub name: 3..45 letters and digits, starting with
	// a letter.
	HubName string
	// PartitionCount is the number of control queues, 1..16; 0 means 4. It
	// must not change once a hub exists (routing is a plain modulo).
	PartitionCount int
	// HTTPClient, when set, carries every storage request. The default keeps
	// 64 idle connections per host and closes idle ones after 4 s (Azurite
	// drops them after 5 s).
	HTTPClient *http.Client
	// Logger receives warnings (poison messages, fallbacks); default
	// slog.Default().
	Logger *slog.Logger
	// AppName names the app for the task hub's app lease: workers with the
	// same name share the hub, another name is refused while this app holds
	// it (see AcquireAppLease). "" is a name too, as in Durable Task.
	AppName string
	// MeterProvider receives the storage request metrics (see
	// StorageOperation); default otel.GetMeterProvider(), so that a
	// provider installed later (telemetry.Setup) is used from then on.
	MeterProvider metric.MeterProvider
}

// Store is the Azure Storage task hub backend. It implements
// backend.Backend and is safe for concurrent use.
type Store struct {
	hub        string
	partitions int
	log        *slog.Logger

	rest *tableREST

	tableService *aztables.ServiceClient
	history      *aztables.Client
	instances    *aztables.Client
	leases       *aztables.Client
	poison       *aztables.Client

	queueService *azqueue.ServiceClient
	control      []*azqueue.QueueClient
	workItems    *azqueue.QueueClient

	extraQueuesMu sync.Mutex
	extraQueues   map[string]*azqueue.QueueClient

	blobs    *largeBlobs
	blobRefs blobRefs

	appName    string
	appLease   *container.Client // {hub-lower}-applease
	blobLeases *container.Client // {hub-lower}-leases (Durable Task's blob partition manager)
}

var _ backend.Backend = (*Store)(nil)

// New validates opts and returns a Store. It makes no storage calls; call
// CreateTaskHub before use.
func New(opts Options) (*Store, error) {
	if err := validateHubName(opts.HubName); err != nil {
		return nil, err
	}
	partitions := opts.PartitionCount
	if partitions == 0 {
		partitions = DefaultPartitionCount
	}
	if partitions < 1 || partitions > MaxPartitionCount {
		return nil, fmt.Errorf("azurestorage: partition count %d is outside 1..%d", opts.PartitionCount, MaxPartitionCount)
	}
	c, err := opts.conn()
	if err != nil {
		return nil, err
	}
	if c.metrics, err = newStorageMetrics(opts.MeterProvider); err != nil {
		return nil, err
	}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		httpClient = defaultHTTPClient()
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{
		hub:         opts.HubName,
		partitions:  partitions,
		log:         logger.With("component", "azurestorage", "hub", opts.HubName),
		extraQueues: map[string]*azqueue.QueueClient{},
		appName:     opts.AppName,
	}

	if s.rest, err = c.tableREST(httpClient); err != nil {
		return nil, err
	}
	if s.tableService, err = c.tableService(httpClient); err != nil {
		return nil, fmt.Errorf("azurestorage: table client: %w", err)
	}
	s.history = s.tableService.NewClient(s.HistoryTableName())
	s.instances = s.tableService.NewClient(s.InstancesTableName())
	s.leases = s.tableService.NewClient(s.PartitionsTableName())
	s.poison = s.tableService.NewClient(s.PoisonTableName())

	if s.queueService, err = c.queueService(httpClient, visibilityOnlyPolicy{}); err != nil {
		return nil, fmt.Errorf("azurestorage: queue client: %w", err)
	}
	for i := range partitions {
		s.control = append(s.control, s.queueService.NewQueueClient(s.ControlQueueName(i)))
	}
	s.workItems = s.queueService.NewQueueClient(s.WorkItemQueueName())

	if s.blobs, err = newLargeBlobs(c, s.hub, httpClient); err != nil {
		return nil, err
	}
	if s.appLease, err = c.container(s.AppLeaseContainerName(), httpClient); err != nil {
		return nil, err
	}
	if s.blobLeases, err = c.container(s.blobLeasesContainerName(), httpClient); err != nil {
		return nil, err
	}
	return s, nil
}

// defaultHTTPClient keeps enough idle connections for concurrent dispatchers
// and closes them before Azurite's 5 s keep-alive timeout does.
func defaultHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       4 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// HubName returns the task hub name as configured.
func (s *Store) HubName() string { return s.hub }

// PartitionCount returns the number of control queues.
func (s *Store) PartitionCount() int { return s.partitions }

// PartitionOf returns the control queue index of instanceID: FNV-1a of its
// UTF-8 bytes modulo the partition count, as Durable Task routes.
func (s *Store) PartitionOf(instanceID string) int {
	return routing.Partition(instanceID, s.partitions)
}

// ControlQueueName returns the name of control queue partition, e.g.
// "xyz-control-03".
func (s *Store) ControlQueueName(partition int) string {
	return routing.ControlQueue(s.hub, partition)
}

// WorkItemQueueName returns the name of the activity queue, e.g.
// "xyz-workitems".
func (s *Store) WorkItemQueueName() string { return routing.WorkItemQueue(s.hub) }

// WakeQueueName returns the name of the wake queue, e.g. "xyz-wake" (see
// SendWake).
func (s *Store) WakeQueueName() string { return routing.WakeQueue(s.hub) }

// HistoryTableName returns the name of the History table, e.g. "xyzHistory".
func (s *Store) HistoryTableName() string { return s.hub + "History" }

// InstancesTableName returns the name of the Instances table.
func (s *Store) InstancesTableName() string { return s.hub + "Instances" }

// PartitionsTableName returns the name of the partition-ownership table.
func (s *Store) PartitionsTableName() string { return s.hub + "Partitions" }

// PoisonTableName returns the name of the table that holds parked messages.
func (s *Store) PoisonTableName() string { return s.hub + "Poison" }

// LargeMessagesContainerName returns the name of the blob container that
// holds payloads too large for queues and tables, e.g. "xyz-largemessages".
func (s *Store) LargeMessagesContainerName() string { return s.blobs.name }

func (s *Store) queueNames() []string {
	names := make([]string, 0, s.partitions+2)
	for i := range s.partitions {
		names = append(names, s.ControlQueueName(i))
	}
	return append(names, s.WorkItemQueueName(), s.WakeQueueName())
}

func (s *Store) tableNames() []string {
	return []string{s.HistoryTableName(), s.InstancesTableName(), s.PartitionsTableName(), s.PoisonTableName()}
}

// CreateTaskHub creates every queue and table of the hub if missing, the
// app lease container and its info blob, and inserts the missing partition
// rows. It is idempotent. The large-message container is created on first
// use. A hub that exists with another partition count is refused first
// (see checkLayout), before anything is created.
func (s *Store) CreateTaskHub(ctx context.Context) error {
	// Callers retry the whole creation (the engine does, with its own
	// backoff and a log line per failure): one quick SDK retry per call is
	// enough, so that an unreachable account is reported in well under a
	// second instead of after the SDK's full retry schedule.
	ctx = policy.WithRetryOptions(ctx, createRetryOptions)
	if err := s.checkLayout(ctx); err != nil {
		return err
	}
	tasks := []func(context.Context) error{s.createAppLease}
	for _, q := range s.queueNames() {
		tasks = append(tasks, func(ctx context.Context) error {
			if _, err := s.queueService.CreateQueue(ctx, q, nil); err != nil && !alreadyExists(err) {
				return fmt.Errorf("azurestorage: create queue %s: %w", q, err)
			}
			return nil
		})
	}
	for _, t := range s.tableNames() {
		tasks = append(tasks, func(ctx context.Context) error {
			if _, err := s.tableService.CreateTable(ctx, t, nil); err != nil && !alreadyExists(err) {
				return fmt.Errorf("azurestorage: create table %s: %w", t, err)
			}
			return nil
		})
	}
	if err := runParallel(ctx, tasks); err != nil {
		return err
	}
	tasks = tasks[:0]
	for i := range s.partitions {
		tasks = append(tasks, func(ctx context.Context) error {
			e := &entity{pk: "", rk: s.ControlQueueName(i)}
			e.bool(colIsDraining, false)
			data, err := e.marshal()
			if err != nil {
				return err
			}
			if _, err := s.leases.AddEntity(ctx, data, nil); err != nil && !alreadyExists(err) {
				return fmt.Errorf("azurestorage: insert partition row %s: %w", e.rk, err)
			}
			return nil
		})
	}
	return runParallel(ctx, tasks)
}

// createRetryOptions are the SDK retries of each CreateTaskHub call.
var createRetryOptions = policy.RetryOptions{MaxRetries: 1, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: time.Second, TryTimeout: 10 * time.Second}

// DeleteTaskHub deletes every queue, table and blob container of the hub;
// missing ones are skipped.
func (s *Store) DeleteTaskHub(ctx context.Context) error {
	tasks := []func(context.Context) error{s.blobs.deleteContainer, s.deleteAppLease}
	for _, q := range s.queueNames() {
		tasks = append(tasks, func(ctx context.Context) error {
			if _, err := s.queueService.DeleteQueue(ctx, q, nil); err != nil && !isStatus(err, http.StatusNotFound) {
				return fmt.Errorf("azurestorage: delete queue %s: %w", q, err)
			}
			return nil
		})
	}
	for _, t := range s.tableNames() {
		tasks = append(tasks, func(ctx context.Context) error {
			if _, err := s.tableService.DeleteTable(ctx, t, nil); err != nil && !isStatus(err, http.StatusNotFound) {
				return fmt.Errorf("azurestorage: delete table %s: %w", t, err)
			}
			return nil
		})
	}
	return runParallel(ctx, tasks)
}

// runParallel runs the tasks concurrently and returns their errors joined.
func runParallel(ctx context.Context, tasks []func(context.Context) error) error {
	errs := make([]error, len(tasks))
	var wg sync.WaitGroup
	for i, task := range tasks {
		wg.Go(func() { errs[i] = task(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// responseError returns the status and error code of a service error.
func responseError(err error) (status int, code string, ok bool) {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode, re.ErrorCode, true
	}
	return 0, "", false
}

func isStatus(err error, status int) bool {
	st, _, ok := responseError(err)
	return ok && st == status
}

// alreadyExists reports a 409 for a resource that exists, as opposed to
// one being deleted (TableBeingDeleted, QueueBeingDeleted), which is an
// error worth reporting.
func alreadyExists(err error) bool {
	st, code, ok := responseError(err)
	return ok && st == http.StatusConflict && !strings.HasSuffix(code, "BeingDeleted")
}

// discardBlobs deletes blobs that no row or message refers to (an upload
// whose write then failed), as a best effort: a failure is only logged, and
// purging the instance removes them anyway.
func (s *Store) discardBlobs(ctx context.Context, names ...string) {
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.blobs.deleteAll(ctx, names); err != nil {
		s.log.Warn("could not delete unused large-payload blobs", "count", len(names), "err", err)
	}
}

// conn resolves how the Store reaches its account: the connection string
// or, with a Credential, the Endpoints.
func (o Options) conn() (conn, error) {
	if o.Credential == nil {
		a, err := ParseConnectionString(o.ConnectionString)
		if err != nil {
			return conn{}, err
		}
		return conn{
			ep:   Endpoints{Blob: a.BlobEndpoint, Queue: a.QueueEndpoint, Table: a.TableEndpoint},
			name: a.Name, key: a.Key,
		}, nil
	}
	if o.ConnectionString != "" {
		return conn{}, errors.New("azurestorage: both a connection string and a credential are set; use one")
	}
	c := conn{cred: o.Credential}
	for _, e := range []struct {
		service string
		in      string
		out     *string
	}{{"blob", o.Endpoints.Blob, &c.ep.Blob}, {"queue", o.Endpoints.Queue, &c.ep.Queue}, {"table", o.Endpoints.Table, &c.ep.Table}} {
		v, err := ValidateEndpoint(e.in)
		if err != nil {
			return conn{}, fmt.Errorf("azurestorage: %s endpoint: %w", e.service, err)
		}
		*e.out = v
	}
	return c, nil
}
