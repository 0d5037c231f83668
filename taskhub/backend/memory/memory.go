// Package memory implements backend.Backend in memory, with the semantics
// of the Azure Storage backend (package azurestorage), so that the engine
// can be tested without storage and behave as it does on Azure:
//
//   - control queues per partition (instances routed by FNV-1a of their ID,
//     as azurestorage routes) and a work-item queue, with Azure Queue
//     semantics: delays and visibility timeouts in whole seconds (rounded
//     up, at most 7 days; a receive hides for at least 1 s), dequeue counts,
//     insertion times, and pop receipts that change on every receive and
//     visibility update, so that a stale receipt fails with
//     backend.ErrConflict;
//   - the history store fenced by a sentinel ETag per instance;
//   - Instances rows with ETags (If-Match updates and merges);
//   - the partition table with ETags, the app lease and the poison table;
//   - the wake queue (SendWake, read back with Wakes, received as the
//     Functions host would with ReceiveWakes).
//
// Values are stored as Azure Storage keeps them: times in UTC at 100 ns
// precision (history.StorageTime), empty maps as nil, events with only the
// members of their Durable Task event class (a field that type does not
// carry is dropped, as azurestorage drops it), FailureDetails.Properties as
// JSON values; every read returns a copy. Unlike Azure there are no size
// limits, and an append of any number of events is atomic.
//
// A Storage is one storage account: backends opened on it with the same
// hub name share the hub, as processes sharing an account do. Its clock
// can be injected (StorageOptions.Now) to test visibility and lease
// expiry without waiting. Everything is safe for concurrent use.
package memory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/internal/routing"
)

// DefaultPartitionCount is the number of control queues when
// Options.PartitionCount is 0, as in Durable Task.
const DefaultPartitionCount = 4

// MaxPartitionCount is the largest partition count Durable Task allows.
const MaxPartitionCount = 16

// AppLeaseDuration is how long the app lease lasts without renewal, as
// Durable Task's (and azurestorage's).
const AppLeaseDuration = 60 * time.Second

// StorageOptions configures a Storage.
type StorageOptions struct {
	// Now is the storage's clock: message visibility, insertion times, app
	// lease expiry, parking times and partition lease checks read it.
	// Default time.Now.
	Now func() time.Time
}

// Storage is an in-memory storage account holding task hubs by name (case
// does not matter, as for Azure queue and table names).
type Storage struct {
	now func() time.Time
	seq atomic.Uint64 // ETags, pop receipts and message sequence numbers

	mu   sync.Mutex
	hubs map[string]*hub
}

// NewStorage returns an empty storage account.
func NewStorage(opts StorageOptions) *Storage {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Storage{now: now, hubs: map[string]*hub{}}
}

// Options configures a Backend.
type Options struct {
	// HubName is the task hub name: 3..45 letters and digits, starting with
	// a letter (the Durable Functions rule).
	HubName string
	// PartitionCount is the number of control queues, 1..16; 0 means 4. A
	// hub keeps the count it was created with (see CreateTaskHub).
	PartitionCount int
	// AppName names the app for the app lease: backends with the same name
	// share the hub, another name is refused while the lease is held. "" is
	// a name too.
	AppName string
}

// Backend is one process's view of an in-memory task hub. It implements
// backend.Backend.
type Backend struct {
	st         *Storage
	h          *hub
	name       string
	partitions int
	app        string
}

var _ backend.Backend = (*Backend)(nil)

// New returns a backend on a hub of a new Storage with the real clock.
func New(opts Options) (*Backend, error) { return NewStorage(StorageOptions{}).Open(opts) }

// Open validates opts and returns a backend on the hub opts.HubName of s
// (a new, empty hub if none by that name was opened before). Call
// CreateTaskHub before use, as with Azure Storage.
func (s *Storage) Open(opts Options) (*Backend, error) {
	if err := validateHubName(opts.HubName); err != nil {
		return nil, err
	}
	partitions := opts.PartitionCount
	if partitions == 0 {
		partitions = DefaultPartitionCount
	}
	if partitions < 1 || partitions > MaxPartitionCount {
		return nil, fmt.Errorf("memory: partition count %d is outside 1..%d", opts.PartitionCount, MaxPartitionCount)
	}
	key := strings.ToLower(opts.HubName)
	s.mu.Lock()
	h, ok := s.hubs[key]
	if !ok {
		h = newHub()
		s.hubs[key] = h
	}
	s.mu.Unlock()
	return &Backend{st: s, h: h, name: opts.HubName, partitions: partitions, app: opts.AppName}, nil
}

// Storage returns the storage account the backend is on, to open other
// backends (other apps, other processes) on the same hub.
func (b *Backend) Storage() *Storage { return b.st }

// AppName returns the app name this backend takes the app lease for.
func (b *Backend) AppName() string { return b.app }

// enter checks ctx and that the hub exists for op, and locks the hub; the
// caller unlocks it (b.h.mu) when it returns nil.
func (b *Backend) enter(ctx context.Context, op string) error {
	if err := ctxErr(ctx, op); err != nil {
		return err
	}
	b.h.mu.Lock()
	if err := b.requireHub(op); err != nil {
		b.h.mu.Unlock()
		return err
	}
	return nil
}

// HubName returns the task hub name as configured.
func (b *Backend) HubName() string { return b.name }

// PartitionCount returns the number of control queues.
func (b *Backend) PartitionCount() int { return b.partitions }

// PartitionOf returns the control queue index of instanceID: FNV-1a of its
// UTF-8 bytes modulo the partition count, exactly as azurestorage routes.
func (b *Backend) PartitionOf(instanceID string) int {
	return routing.Partition(instanceID, b.partitions)
}

// ControlQueueName returns the name of control queue partition, e.g.
// "xyz-control-03" (the Azure Storage name).
func (b *Backend) ControlQueueName(partition int) string {
	return routing.ControlQueue(b.name, partition)
}

// WorkItemQueueName returns the name of the activity queue, e.g.
// "xyz-workitems".
func (b *Backend) WorkItemQueueName() string { return routing.WorkItemQueue(b.name) }

// WakeQueueName returns the name of the wake queue, e.g. "xyz-wake".
func (b *Backend) WakeQueueName() string { return routing.WakeQueue(b.name) }

// hub is the state of one task hub, shared by the backends opened on it.
type hub struct {
	mu         sync.Mutex
	created    bool
	partitions int // the count the hub was created with
	queues     map[string]*queue
	history    map[string]*historyLog
	instances  map[string]*instanceRow
	leases     map[string]*leaseRow // by control queue name
	poison     map[poisonKey]ParkedMessage
	appLease   appLease
}

func newHub() *hub {
	h := &hub{}
	h.reset()
	return h
}

// reset empties the hub, as deleting every queue, table and container does.
func (h *hub) reset() {
	h.created, h.partitions = false, 0
	h.queues = map[string]*queue{}
	h.history = map[string]*historyLog{}
	h.instances = map[string]*instanceRow{}
	h.leases = map[string]*leaseRow{}
	h.poison = map[poisonKey]ParkedMessage{}
	h.appLease = appLease{}
}

// LayoutMismatchError reports a hub created with another partition count
// than the one configured. It matches backend.ErrLayoutMismatch.
type LayoutMismatchError struct {
	Hub        string
	Configured int
	Found      int
}

// Error implements error.
func (e *LayoutMismatchError) Error() string {
	return fmt.Sprintf("task hub %s has %d partitions, but this app is configured with %d: "+
		"instances would be routed to the wrong control queues; configure %d partitions, or use a new task hub name",
		e.Hub, e.Found, e.Configured, e.Found)
}

// Unwrap returns backend.ErrLayoutMismatch.
func (e *LayoutMismatchError) Unwrap() error { return backend.ErrLayoutMismatch }

// CreateTaskHub creates the hub's queues and tables if missing and inserts
// the missing partition rows; rows that exist keep their owners and ETags.
// It is idempotent. A hub that exists with another partition count is
// refused with a *LayoutMismatchError, and nothing changes.
func (b *Backend) CreateTaskHub(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: create task hub %s: %w", b.name, err)
	}
	h := b.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.created && h.partitions != b.partitions {
		return fmt.Errorf("memory: %w", &LayoutMismatchError{Hub: b.name, Configured: b.partitions, Found: h.partitions})
	}
	h.created, h.partitions = true, b.partitions
	for i := range b.partitions {
		name := b.ControlQueueName(i)
		if h.queues[name] == nil {
			h.queues[name] = newQueue()
		}
		if h.leases[name] == nil {
			h.leases[name] = &leaseRow{lease: backend.PartitionLease{Partition: i, QueueName: name}, etag: b.st.etag()}
		}
	}
	for _, name := range []string{b.WorkItemQueueName(), b.WakeQueueName()} {
		if h.queues[name] == nil {
			h.queues[name] = newQueue()
		}
	}
	return nil
}

// DeleteTaskHub removes every queue and table of the hub and its app lease.
// Deleting a hub that does not exist is not an error.
func (b *Backend) DeleteTaskHub(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: delete task hub %s: %w", b.name, err)
	}
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	for _, q := range b.h.queues {
		q.signal() // wake waiters: their queue is gone
	}
	b.h.reset()
	return nil
}

// requireHub returns an error wrapping backend.ErrNotFound when the hub's
// tables do not exist (before CreateTaskHub, after DeleteTaskHub), as Azure
// answers 404 for a missing table. Call with h.mu held.
func (b *Backend) requireHub(op string) error {
	if !b.h.created {
		return fmt.Errorf("memory: %s: task hub %s does not exist (call CreateTaskHub first): %w", op, b.name, backend.ErrNotFound)
	}
	return nil
}

// etag returns a new ETag, unique in the storage account.
func (s *Storage) etag() string { return fmt.Sprintf(`W/"mem-%d"`, s.seq.Add(1)) }

// token returns a new pop receipt.
func (s *Storage) token() string { return fmt.Sprintf("pop-%d", s.seq.Add(1)) }

// newGUID returns a random (version 4) GUID in the 8-4-4-4-12 form.
func newGUID() string {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		panic("memory: crypto/rand failed: " + err.Error())
	}
	u[6] = u[6]&0x0F | 0x40
	u[8] = u[8]&0x3F | 0x80
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// validateHubName checks the Durable Functions task hub rule: 3..45 ASCII
// letters and digits, starting with a letter.
func validateHubName(name string) error {
	if len(name) < 3 || len(name) > 45 {
		return fmt.Errorf("memory: task hub name %q must have 3 to 45 characters", name)
	}
	for i, c := range []byte(name) {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter {
			return fmt.Errorf("memory: task hub name %q must start with a letter", name)
		}
		if !letter && (c < '0' || c > '9') {
			return fmt.Errorf("memory: task hub name %q may contain only letters and digits", name)
		}
	}
	return nil
}

// maxKeyUnits is the longest table key Azure accepts, in UTF-16 code units.
const maxKeyUnits = 512

// checkInstanceID refuses the instance IDs Azure tables cannot hold: empty,
// not UTF-8, or longer than a table key once escaped (Durable Task's key
// sanitation turns each of ^ / \ # ? and each control character into two
// code units).
func checkInstanceID(op, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("memory: %s: empty instance ID", op)
	case !utf8.ValidString(id):
		return fmt.Errorf("memory: %s: instance ID %q is not valid UTF-8", op, id)
	}
	units := 0
	for _, r := range id {
		units += utf16.RuneLen(r)
		if strings.ContainsRune(`^/\#?`, r) || r <= 0x1F || r >= 0x7F && r <= 0x9F {
			units++
		}
	}
	if units > maxKeyUnits {
		return fmt.Errorf("memory: %s: instance ID is too long: %d UTF-16 code units after escaping, the table key limit is %d", op, units, maxKeyUnits)
	}
	return nil
}

// ctxErr wraps a done context's error for op.
func ctxErr(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: %s: %w", op, err)
	}
	return nil
}

var errNoETag = errors.New("the lease has no ETag (read it first)")
