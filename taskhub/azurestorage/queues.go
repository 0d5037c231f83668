package azurestorage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"
	"unicode/utf16"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

const (
	// maxDequeue is the most messages one Get Messages call returns.
	maxDequeue = 32
	// maxVisibility is the longest visibility delay Azure Queues accept.
	maxVisibility = 7 * 24 * time.Hour
	// maxReasonUnits caps the Reason column of parked messages.
	maxReasonUnits = 8 * 1024
)

// Columns of the Poison table.
const (
	colReason       = "Reason"
	colDequeueCount = "DequeueCount"
	colInsertedTime = "InsertedTime"
	colParkedTime   = "ParkedTime"
	colBody         = "Body"
)

// visibilityOnlyKey marks a context whose UpdateMessage call must leave the
// message text alone.
type visibilityOnlyKey struct{}

// visibilityOnlyPolicy drops the body of an Update Message request whose
// context is marked with visibilityOnlyKey. azqueue always sends the
// message text, which would rewrite (and, in Azurite, re-store) the message;
// without a body the service changes the visibility only.
type visibilityOnlyPolicy struct{}

func (visibilityOnlyPolicy) Do(req *policy.Request) (*http.Response, error) {
	if req.Raw().Method == http.MethodPut && req.Raw().Context().Value(visibilityOnlyKey{}) != nil {
		if err := req.SetBody(nil, ""); err != nil {
			return nil, err
		}
	}
	return req.Next()
}

// seconds converts d to whole seconds, rounding up so that a delay never
// ends early.
func seconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	return int32(math.Ceil(d.Seconds()))
}

// queueClient returns the client of a queue of this hub by name.
func (s *Store) queueClient(name string) *azqueue.QueueClient {
	for i, q := range s.control {
		if s.ControlQueueName(i) == name {
			return q
		}
	}
	if name == s.WorkItemQueueName() {
		return s.workItems
	}
	s.extraQueuesMu.Lock()
	defer s.extraQueuesMu.Unlock()
	q, ok := s.extraQueues[name]
	if !ok {
		q = s.queueService.NewQueueClient(name)
		s.extraQueues[name] = q
	}
	return q
}

// SendControl puts msg on the control queue of msg.Target.InstanceID,
// invisible for delay (rounded up to whole seconds). The message never
// expires. The receipt's pop receipt lets the sender delete or re-hide the
// message without dequeuing it.
func (s *Store) SendControl(ctx context.Context, msg backend.Message, delay time.Duration) (backend.Receipt, error) {
	if msg.Target.InstanceID == "" {
		return backend.Receipt{}, errors.New("azurestorage: send control message: empty target instance ID")
	}
	p := s.PartitionOf(msg.Target.InstanceID)
	return s.send(ctx, s.control[p], s.ControlQueueName(p), &msg, delay)
}

// SendWorkItem puts an activity message on the work-item queue, invisible
// for delay.
func (s *Store) SendWorkItem(ctx context.Context, msg backend.Message, delay time.Duration) (backend.Receipt, error) {
	if msg.Target.InstanceID == "" {
		return backend.Receipt{}, errors.New("azurestorage: send work item: empty target instance ID")
	}
	return s.send(ctx, s.workItems, s.WorkItemQueueName(), &msg, delay)
}

func (s *Store) send(ctx context.Context, q *azqueue.QueueClient, queue string, msg *backend.Message, delay time.Duration) (backend.Receipt, error) {
	if delay > maxVisibility {
		return backend.Receipt{}, fmt.Errorf("azurestorage: send to %s: delay %v exceeds the queue limit of 7 days", queue, delay)
	}
	activityID := newGUID()
	body, err := encodeMessage(msg, activityID, messageSequence.Add(1))
	if err != nil {
		return backend.Receipt{}, err
	}
	blob := ""
	if len(body) > maxQueuePayloadBytes {
		// Durable Task's large-message layout: the full message goes to a
		// blob, the queue gets a wrapper naming it.
		pk, err := partitionKeyFor(msg.Target.InstanceID)
		if err != nil {
			return backend.Receipt{}, err
		}
		blob = messageBlobName(pk, activityID, msg.Event.Type.String())
		if err := s.blobs.upload(ctx, blob, body); err != nil {
			return backend.Receipt{}, fmt.Errorf("azurestorage: send %s to %s: offload %d-byte message: %w", msg.Event.Type, queue, len(body), err)
		}
		body = encodeWrapper(blob)
	}
	ttl, vis := int32(-1), seconds(delay)
	resp, err := q.EnqueueMessage(ctx, string(body), &azqueue.EnqueueMessageOptions{TimeToLive: &ttl, VisibilityTimeout: &vis})
	if err != nil {
		if status, _, ok := responseError(err); ok && blob != "" && status >= 400 && status < 500 {
			// The service refused the message, so nothing refers to the
			// blob. After other failures the message may have been stored.
			s.discardBlobs(ctx, blob)
		}
		return backend.Receipt{}, queueError("send to "+queue, err)
	}
	if len(resp.Messages) != 1 || resp.Messages[0].MessageID == nil || resp.Messages[0].PopReceipt == nil {
		return backend.Receipt{}, fmt.Errorf("azurestorage: send to %s: the service returned no message receipt", queue)
	}
	m := resp.Messages[0]
	r := backend.Receipt{Queue: queue, MessageID: *m.MessageID, PopReceipt: *m.PopReceipt}
	if m.TimeNextVisible != nil {
		r.NextVisible = *m.TimeNextVisible
	}
	return r, nil
}

// ReceiveControl takes up to limit (at most 32) visible messages from control
// queue partition and hides them for visibility (at least one second).
// Messages that cannot be decoded are hidden as well and returned as
// undecodable; the caller retries or parks them.
func (s *Store) ReceiveControl(ctx context.Context, partition, limit int, visibility time.Duration) ([]backend.Received, []backend.Undecodable, error) {
	if partition < 0 || partition >= s.partitions {
		return nil, nil, fmt.Errorf("azurestorage: partition %d is outside 0..%d", partition, s.partitions-1)
	}
	return s.receive(ctx, s.control[partition], s.ControlQueueName(partition), limit, visibility)
}

// ReceiveWorkItems takes up to limit (at most 32) visible activity messages,
// hiding them for visibility; undecodable ones are reported as in
// ReceiveControl.
func (s *Store) ReceiveWorkItems(ctx context.Context, limit int, visibility time.Duration) ([]backend.Received, []backend.Undecodable, error) {
	return s.receive(ctx, s.workItems, s.WorkItemQueueName(), limit, visibility)
}

func (s *Store) receive(ctx context.Context, q *azqueue.QueueClient, queue string, limit int, visibility time.Duration) ([]backend.Received, []backend.Undecodable, error) {
	n := int32(min(max(limit, 1), maxDequeue))
	if visibility > maxVisibility {
		return nil, nil, fmt.Errorf("azurestorage: receive from %s: visibility %v exceeds the queue limit of 7 days", queue, visibility)
	}
	vis := max(seconds(visibility), 1)
	resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n, VisibilityTimeout: &vis})
	if err != nil {
		return nil, nil, queueError("receive from "+queue, err)
	}
	type item struct {
		received backend.Received
		blob     string // CompressedBlobName of a wrapper
		err      error  // why the message is undecodable
		skip     bool   // its blob could not be read now: leave it hidden
	}
	items := make([]item, 0, len(resp.Messages))
	var large []int
	for _, m := range resp.Messages {
		if m == nil || m.MessageID == nil || m.PopReceipt == nil {
			continue
		}
		var it item
		r := &it.received
		r.Receipt = backend.Receipt{Queue: queue, MessageID: *m.MessageID, PopReceipt: *m.PopReceipt}
		if m.TimeNextVisible != nil {
			r.Receipt.NextVisible = *m.TimeNextVisible
		}
		if m.DequeueCount != nil {
			r.DequeueCount = *m.DequeueCount
		}
		if m.InsertionTime != nil {
			r.InsertedAt = *m.InsertionTime
		}
		if m.MessageText != nil {
			r.Body = *m.MessageText
		}
		r.Message, it.err = decodeMessage(r.Body)
		var offloaded *offloadedError
		if errors.As(it.err, &offloaded) {
			it.blob, it.err = offloaded.blob, nil
			large = append(large, len(items))
		}
		items = append(items, it)
	}
	// Fetch offloaded messages; only a missing or unreadable blob makes
	// the message undecodable, other failures leave it to come back later.
	_ = forEachLimit(ctx, len(large), func(ctx context.Context, i int) error {
		it := &items[large[i]]
		text, err := s.blobs.download(ctx, it.blob)
		switch {
		case errors.Is(err, errBlobMissing), errors.Is(err, errBlobCorrupt):
			it.err = fmt.Errorf("%w: %w", ErrLargeMessage, err)
		case err != nil:
			it.skip = true
			s.log.Warn("could not fetch a large message; it stays hidden and comes back later",
				"queue", queue, "messageId", it.received.Receipt.MessageID, "blob", it.blob, "err", err)
		default:
			if it.received.Message, err = decodeMessage(text); err != nil {
				it.err = fmt.Errorf("%w: blob %s holds no valid message: %w", ErrLargeMessage, it.blob, err)
			}
		}
		return nil
	})
	var received []backend.Received
	var undecodable []backend.Undecodable
	for i := range items {
		it := &items[i]
		switch {
		case it.skip:
		case it.err != nil:
			r := it.received
			u := backend.Undecodable{Receipt: r.Receipt, DequeueCount: r.DequeueCount, InsertedAt: r.InsertedAt, Body: r.Body,
				Reason: fmt.Errorf("azurestorage: undecodable message %s in %s: %w", r.Receipt.MessageID, queue, it.err)}
			u.Target, u.EventType = salvageTarget(r.Body, it.blob)
			undecodable = append(undecodable, u)
		default:
			received = append(received, it.received)
		}
	}
	return received, undecodable, nil
}

// DeleteMessage removes a message. A message already gone is not an error;
// a stale pop receipt (someone else has dequeued the message since) is
// ErrConflict.
func (s *Store) DeleteMessage(ctx context.Context, r backend.Receipt) error {
	_, err := s.queueClient(r.Queue).DeleteMessage(ctx, r.MessageID, r.PopReceipt, nil)
	if err != nil && !isStatus(err, http.StatusNotFound) {
		return queueError(fmt.Sprintf("delete message %s from %s", r.MessageID, r.Queue), err)
	}
	return nil
}

// SetVisibility hides the message for d from now (0 makes it visible at
// once) without changing its text, and returns the new receipt. ErrNotFound
// when the message is gone, ErrConflict when the pop receipt is stale.
func (s *Store) SetVisibility(ctx context.Context, r backend.Receipt, d time.Duration) (backend.Receipt, error) {
	if d > maxVisibility {
		return backend.Receipt{}, fmt.Errorf("azurestorage: set visibility of %s: %v exceeds the queue limit of 7 days", r.MessageID, d)
	}
	vis := seconds(d)
	ctx = context.WithValue(ctx, visibilityOnlyKey{}, true)
	resp, err := s.queueClient(r.Queue).UpdateMessage(ctx, r.MessageID, r.PopReceipt, "", &azqueue.UpdateMessageOptions{VisibilityTimeout: &vis})
	if err != nil {
		return backend.Receipt{}, queueError(fmt.Sprintf("set visibility of message %s in %s", r.MessageID, r.Queue), err)
	}
	if resp.PopReceipt == nil {
		return backend.Receipt{}, fmt.Errorf("azurestorage: set visibility of message %s: the service returned no pop receipt", r.MessageID)
	}
	out := backend.Receipt{Queue: r.Queue, MessageID: r.MessageID, PopReceipt: *resp.PopReceipt}
	if resp.TimeNextVisible != nil {
		out.NextVisible = *resp.TimeNextVisible
	}
	return out, nil
}

// ParkPoison records the message in the Poison table (PartitionKey = queue,
// RowKey = message ID, with reason, dequeue count, insertion time and the
// original body) and then deletes it from its queue. The blob of a large
// message stays: the parked wrapper names it.
func (s *Store) ParkPoison(ctx context.Context, p backend.Poison) error {
	r := p.Receipt
	e := &entity{pk: r.Queue, rk: r.MessageID}
	e.str(colReason, truncateUnits(p.Reason, maxReasonUnits))
	e.int64(colDequeueCount, p.DequeueCount)
	e.time(colInsertedTime, p.InsertedAt)
	e.time(colParkedTime, time.Now())
	if utf16Len(p.Body) <= maxStringUnits {
		e.str(colBody, p.Body)
	} else {
		e.binary(colBody, []byte(p.Body))
	}
	data, err := e.marshal()
	if err != nil {
		return err
	}
	if _, err := s.poison.UpsertEntity(ctx, data, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}); err != nil {
		return tableError(fmt.Sprintf("park message %s of %s", r.MessageID, r.Queue), err)
	}
	return s.DeleteMessage(ctx, r)
}

// truncateUnits shortens s to at most n UTF-16 code units.
func truncateUnits(s string, n int) string {
	units := 0
	for i, r := range s {
		units += utf16.RuneLen(r)
		if units > n {
			return s[:i]
		}
	}
	return s
}

// queueError maps a queue service error onto the backend sentinels.
func queueError(op string, err error) error {
	status, code, ok := responseError(err)
	switch {
	case !ok:
		return fmt.Errorf("azurestorage: %s: %w", op, err)
	case status == http.StatusNotFound:
		return fmt.Errorf("azurestorage: %s: %w: HTTP %d %s", op, backend.ErrNotFound, status, code)
	case code == "PopReceiptMismatch":
		return fmt.Errorf("azurestorage: %s: %w: HTTP %d %s", op, backend.ErrConflict, status, code)
	case status == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("azurestorage: %s: %w: HTTP %d %s", op, ErrPayloadTooLarge, status, code)
	}
	return fmt.Errorf("azurestorage: %s: %w", op, err)
}

// ControlQueueLength returns the approximate message count of control queue
// partition (Get Queue Metadata's x-ms-approximate-messages-count): hidden
// messages included, and possibly a little behind.
func (s *Store) ControlQueueLength(ctx context.Context, partition int) (int64, error) {
	if partition < 0 || partition >= s.partitions {
		return 0, fmt.Errorf("azurestorage: queue length: partition %d is outside 0..%d", partition, s.partitions-1)
	}
	return queueLength(ctx, s.control[partition], s.ControlQueueName(partition))
}

// WorkItemQueueLength returns the approximate message count of the
// work-item queue, like ControlQueueLength.
func (s *Store) WorkItemQueueLength(ctx context.Context) (int64, error) {
	return queueLength(ctx, s.workItems, s.WorkItemQueueName())
}

func queueLength(ctx context.Context, q *azqueue.QueueClient, queue string) (int64, error) {
	resp, err := q.GetProperties(ctx, nil)
	if err != nil {
		return 0, queueError("queue length of "+queue, err)
	}
	if resp.ApproximateMessagesCount == nil {
		return 0, fmt.Errorf("azurestorage: queue length of %s: the service returned no message count", queue)
	}
	return int64(*resp.ApproximateMessagesCount), nil
}
