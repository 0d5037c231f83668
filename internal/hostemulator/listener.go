package hostemulator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
)

// Queue listener defaults, as the Storage Queues extension has them
// (host.json extensions.queues).
const (
	defaultQueueBatchSize       = 16
	defaultQueueMaxDequeueCount = 5
	// minQueuePoll is the first backoff step after an empty poll.
	minQueuePoll = 100 * time.Millisecond
)

// QueueDelivery is one queue message the listener handed to a function.
type QueueDelivery struct {
	// Function is the queueTrigger function invoked.
	Function string
	// Queue is the queue the message came from.
	Queue string
	// MessageID is the queue message's ID.
	MessageID string
	// DequeueCount is the message's dequeue count at this delivery.
	DequeueCount int64
	// Text is the message text after the host's message decoding.
	Text string
	// At is when the invocation ended.
	At time.Time
	// Err is why the invocation failed; nil when it succeeded and the
	// message was deleted.
	Err error
	// Poisoned reports that the message was moved to "<queue>-poison".
	Poisoned bool
}

// queueListener polls one queueTrigger function's queue.
type queueListener struct {
	fn        handler.FunctionInfo
	queue     string
	client    *azqueue.QueueClient
	poison    *azqueue.QueueClient
	maxPoll   time.Duration
	settings  queueSettings
	missingAt time.Time // when a missing queue was last logged
}

// queueSettings are host.json's extensions.queues.
type queueSettings struct {
	BatchSize         int    `json:"batchSize"`
	MaxDequeueCount   int64  `json:"maxDequeueCount"`
	VisibilityTimeout string `json:"visibilityTimeout"`
	MessageEncoding   string `json:"messageEncoding"`

	retryAfter time.Duration // VisibilityTimeout parsed
}

// readQueueSettings reads host.json's extensions.queues, with the
// extension's defaults: batches of 16, 5 dequeues before the poison queue,
// failed messages visible again at once, base64 message encoding.
func readQueueSettings(root string) (queueSettings, error) {
	path := filepath.Join(root, "host.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return queueSettings{}, fmt.Errorf("read host.json: %w", err)
	}
	var h struct {
		Extensions struct {
			Queues queueSettings `json:"queues"`
		} `json:"extensions"`
	}
	if err := json.Unmarshal(trimBOM(data), &h); err != nil {
		return queueSettings{}, fmt.Errorf("%s: %w", path, err)
	}
	s := h.Extensions.Queues
	if s.BatchSize <= 0 {
		s.BatchSize = defaultQueueBatchSize
	}
	s.BatchSize = min(s.BatchSize, 32)
	if s.MaxDequeueCount <= 0 {
		s.MaxDequeueCount = defaultQueueMaxDequeueCount
	}
	if s.VisibilityTimeout != "" {
		if s.retryAfter, err = handler.ParseTimeSpan(s.VisibilityTimeout); err != nil {
			return queueSettings{}, fmt.Errorf("%s: extensions.queues.visibilityTimeout: %w", path, err)
		}
	}
	switch strings.ToLower(s.MessageEncoding) {
	case "":
		s.MessageEncoding = "base64"
	case "base64", "none":
		s.MessageEncoding = strings.ToLower(s.MessageEncoding)
	default:
		return queueSettings{}, fmt.Errorf("%s: extensions.queues.messageEncoding %q: want base64 or none", path, s.MessageEncoding)
	}
	return s, nil
}

// startQueueListeners starts a listener for every enabled queueTrigger
// function (not disabled in function.json, nor by the app setting
// AzureWebJobs.<name>.Disabled), polling at most maxPoll apart while its queue is empty.
func (h *Host) startQueueListeners(maxPoll time.Duration) error {
	var fns []handler.FunctionInfo
	for _, f := range h.cfg.Functions {
		disabled := strings.EqualFold(h.env["AzureWebJobs."+f.Name+".Disabled"], "true") || h.env["AzureWebJobs."+f.Name+".Disabled"] == "1"
		if strings.EqualFold(f.TriggerType, "queueTrigger") && !f.Disabled && !disabled {
			fns = append(fns, f)
		}
	}
	if len(fns) == 0 {
		return nil
	}
	settings, err := readQueueSettings(h.cfg.Root)
	if err != nil {
		return err
	}
	var ls []*queueListener
	for _, f := range fns {
		l, err := h.newQueueListener(f, settings, maxPoll)
		if err != nil {
			return fmt.Errorf("queue listener of function %s: %w", f.Name, err)
		}
		ls = append(ls, l)
	}
	for _, l := range ls {
		h.logs.hostf(slog.LevelInfo, "listening on queue %s for function %s", l.queue, l.fn.Name)
		h.supervisor.Add(1)
		go h.listen(l)
	}
	return nil
}

// newQueueListener resolves f's queue and connection the host's way: a
// %NAME% in queueName is the app setting NAME, the name is lower-cased, and
// connection names an app setting (AzureWebJobs<connection> first, then
// <connection>; AzureWebJobsStorage when empty) holding a connection
// string.
func (h *Host) newQueueListener(f handler.FunctionInfo, settings queueSettings, maxPoll time.Duration) (*queueListener, error) {
	trigger := triggerBinding(f)
	str := func(name string) string {
		var s string
		_ = json.Unmarshal(trigger.Properties[name], &s)
		return s
	}
	queue, err := handler.ResolveSettings(str("queueName"), func(k string) string { return h.env[k] })
	if err != nil {
		return nil, fmt.Errorf("queueName: %w", err)
	}
	if queue == "" {
		return nil, errors.New("the queueTrigger has no queueName")
	}
	queue = strings.ToLower(queue)
	conn := str("connection")
	names := []string{"AzureWebJobsStorage"}
	if conn != "" {
		names = []string{"AzureWebJobs" + conn, conn}
	}
	var connStr string
	for _, n := range names {
		if connStr = h.env[n]; connStr != "" {
			break
		}
	}
	if connStr == "" {
		return nil, fmt.Errorf("connection: app setting %s is not set (the emulator needs a connection string)", strings.Join(names, " or "))
	}
	acct, err := azurestorage.ParseConnectionString(connStr)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", names[0], err)
	}
	cred, err := azqueue.NewSharedKeyCredential(acct.Name, acct.Key)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", names[0], err)
	}
	svc, err := azqueue.NewServiceClientWithSharedKeyCredential(acct.QueueEndpoint+"/", cred, nil)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", names[0], err)
	}
	return &queueListener{fn: f, queue: queue, client: svc.NewQueueClient(queue), poison: svc.NewQueueClient(queue + "-poison"),
		maxPoll: maxPoll, settings: settings}, nil
}

// listen polls l's queue until the host stops: at once again after a
// message, with a backoff doubling from 100 ms to l.maxPoll while empty.
func (h *Host) listen(l *queueListener) {
	defer h.supervisor.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-h.stopCh
		cancel()
	}()
	delay := min(minQueuePoll, l.maxPoll)
	for ctx.Err() == nil {
		if h.pollQueue(ctx, l) > 0 {
			delay = min(minQueuePoll, l.maxPoll)
			continue
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		delay = min(2*delay, l.maxPoll)
	}
}

// queueVisibility is how long a message being processed stays hidden.
var queueVisibility = int32(queueVisibilityTimeout / time.Second)

// pollQueue receives one batch and processes it; it returns the number of
// messages received.
func (h *Host) pollQueue(ctx context.Context, l *queueListener) int {
	n := int32(l.settings.BatchSize)
	resp, err := l.client.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n, VisibilityTimeout: &queueVisibility})
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			if time.Since(l.missingAt) > time.Minute {
				h.logs.hostf(slog.LevelWarn, "queue %s of function %s does not exist (yet)", l.queue, l.fn.Name)
				l.missingAt = time.Now()
			}
			return 0
		}
		h.logs.hostf(slog.LevelWarn, "poll of queue %s failed: %v", l.queue, err)
		return 0
	}
	for _, m := range resp.Messages {
		h.deliver(ctx, l, m)
	}
	return len(resp.Messages)
}

// deliver invokes l's function with m and settles m: deleted on success;
// on failure visible again after visibilityTimeout, or moved to the poison
// queue once it has been dequeued maxDequeueCount times. A message already
// dequeued more often than that is moved without an invocation.
func (h *Host) deliver(ctx context.Context, l *queueListener, m *azqueue.DequeuedMessage) {
	if m.MessageID == nil || m.PopReceipt == nil || m.MessageText == nil || m.DequeueCount == nil {
		return
	}
	d := QueueDelivery{Function: l.fn.Name, Queue: l.queue, MessageID: *m.MessageID, DequeueCount: *m.DequeueCount}
	stored := *m.MessageText
	if d.DequeueCount > l.settings.MaxDequeueCount {
		d.Err = fmt.Errorf("dequeued %d times, more than maxDequeueCount %d", d.DequeueCount, l.settings.MaxDequeueCount)
		h.settleFailed(ctx, l, m, stored, &d)
		return
	}
	d.Text = stored
	var err error
	if l.settings.MessageEncoding == "base64" {
		var b []byte
		if b, err = base64.StdEncoding.DecodeString(stored); err != nil {
			err = fmt.Errorf("message is not base64 (host.json extensions.queues.messageEncoding is base64): %w", err)
		}
		d.Text = string(b)
	}
	began := time.Now()
	if err == nil {
		meta := queueMeta{id: d.MessageID, popReceipt: *m.PopReceipt, dequeueCount: d.DequeueCount}
		if m.InsertionTime != nil {
			meta.inserted = *m.InsertionTime
		}
		if m.ExpirationTime != nil {
			meta.expires = *m.ExpirationTime
		}
		if m.TimeNextVisible != nil {
			meta.nextVisible = *m.TimeNextVisible
		}
		h.logs.hostf(slog.LevelInfo, "Executing 'Functions.%s' (Reason='New queue message detected on '%s'.', MessageId=%s, DequeueCount=%d)",
			l.fn.Name, l.queue, d.MessageID, d.DequeueCount)
		var data map[string]any
		var md *foldMap
		if data, md, err = queueInvocation(l.fn, d.Text, meta); err == nil {
			_, err = h.invoke(ctx, l.fn, data, md)
		}
	}
	took := time.Since(began).Round(time.Millisecond)
	if err != nil {
		h.logs.hostf(slog.LevelError, "Executed 'Functions.%s' (Failed, MessageId=%s, Duration=%v): %v", l.fn.Name, d.MessageID, took, err)
		d.Err = err
		h.settleFailed(ctx, l, m, stored, &d)
		return
	}
	h.logs.hostf(slog.LevelInfo, "Executed 'Functions.%s' (Succeeded, MessageId=%s, Duration=%v)", l.fn.Name, d.MessageID, took)
	if _, err := l.client.DeleteMessage(ctx, d.MessageID, *m.PopReceipt, nil); err != nil && ctx.Err() == nil {
		h.logs.hostf(slog.LevelWarn, "delete message %s from %s: %v", d.MessageID, l.queue, err)
	}
	h.recordDelivery(d)
}

// settleFailed releases a failed message, or parks it in the poison queue.
func (h *Host) settleFailed(ctx context.Context, l *queueListener, m *azqueue.DequeuedMessage, stored string, d *QueueDelivery) {
	defer func() { h.recordDelivery(*d) }()
	if d.DequeueCount < l.settings.MaxDequeueCount {
		vis := int32(l.settings.retryAfter / time.Second)
		if _, err := l.client.UpdateMessage(ctx, d.MessageID, *m.PopReceipt, stored, &azqueue.UpdateMessageOptions{VisibilityTimeout: &vis}); err != nil && ctx.Err() == nil {
			h.logs.hostf(slog.LevelWarn, "release message %s of %s: %v", d.MessageID, l.queue, err)
		}
		return
	}
	if _, err := l.poison.Create(ctx, nil); err != nil {
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusConflict {
			h.logs.hostf(slog.LevelWarn, "create poison queue %s-poison: %v", l.queue, err)
			return
		}
	}
	ttl := int32(-1)
	if _, err := l.poison.EnqueueMessage(ctx, stored, &azqueue.EnqueueMessageOptions{TimeToLive: &ttl}); err != nil {
		h.logs.hostf(slog.LevelWarn, "move message %s to %s-poison: %v", d.MessageID, l.queue, err)
		return
	}
	if _, err := l.client.DeleteMessage(ctx, d.MessageID, *m.PopReceipt, nil); err != nil {
		h.logs.hostf(slog.LevelWarn, "delete poisoned message %s from %s: %v", d.MessageID, l.queue, err)
	}
	d.Poisoned = true
	h.logs.hostf(slog.LevelWarn, "Message has reached MaxDequeueCount of %d. Moving message to queue '%s-poison'.", l.settings.MaxDequeueCount, l.queue)
}

func (h *Host) recordDelivery(d QueueDelivery) {
	d.At = time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deliveries = append(h.deliveries, d)
	h.notifyLocked()
}

// QueueDeliveries returns the queue messages the listeners handed to
// functions so far, in order (see Options.QueuePollInterval).
func (h *Host) QueueDeliveries() []QueueDelivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]QueueDelivery(nil), h.deliveries...)
}
