package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

const (
	// maxDequeue is the most messages one receive returns (Azure's limit).
	maxDequeue = 32
	// maxVisibility is the longest delay or visibility Azure Queues accept.
	maxVisibility = 7 * 24 * time.Hour
	// maxReasonUnits caps the reason of parked messages, as azurestorage does.
	maxReasonUnits = 8 * 1024
)

// queue is one storage queue: messages in insertion order.
type queue struct {
	msgs   []*message
	byID   map[string]*message
	dead   int           // deleted messages still in msgs
	notify chan struct{} // closed and replaced when a message may have become visible
}

// message is one stored queue message.
type message struct {
	id, pop, body string
	inserted      time.Time
	visible       time.Time // hidden until then
	dequeues      int64
	deleted       bool
}

func newQueue() *queue { return &queue{byID: map[string]*message{}, notify: make(chan struct{})} }

func (q *queue) signal() {
	close(q.notify)
	q.notify = make(chan struct{})
}

func (q *queue) remove(m *message) {
	m.deleted = true
	delete(q.byID, m.id)
	q.dead++
	if q.dead > 64 && q.dead > len(q.msgs)/2 {
		q.msgs = slices.DeleteFunc(q.msgs, func(m *message) bool { return m.deleted })
		q.dead = 0
	}
}

// seconds rounds d up to whole seconds, as azurestorage sends delays and
// visibilities, so that a delay never ends early; negative is 0.
func seconds(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(d.Seconds())) * time.Second
}

// reported is a time as the queue service reports it (RFC 1123, whole
// seconds, UTC).
func reported(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// queueOf returns queue name of the hub, or an error wrapping
// backend.ErrNotFound. Call with h.mu held.
func (b *Backend) queueOf(op, name string) (*queue, error) {
	q := b.h.queues[name]
	if q == nil {
		return nil, fmt.Errorf("memory: %s: queue %s does not exist: %w", op, name, backend.ErrNotFound)
	}
	return q, nil
}

// SendControl puts msg on the control queue of msg.Target.InstanceID,
// invisible for delay (rounded up to whole seconds, at most 7 days). As in
// azurestorage, the message gets a new ActivityID and SequenceNumber, and
// the receipt lets the sender delete or re-hide it without dequeuing it.
func (b *Backend) SendControl(ctx context.Context, msg backend.Message, delay time.Duration) (backend.Receipt, error) {
	if msg.Target.InstanceID == "" {
		return backend.Receipt{}, errors.New("memory: send control message: empty target instance ID")
	}
	return b.send(ctx, b.ControlQueueName(b.PartitionOf(msg.Target.InstanceID)), &msg, delay)
}

// SendWorkItem puts an activity message on the work-item queue, invisible
// for delay.
func (b *Backend) SendWorkItem(ctx context.Context, msg backend.Message, delay time.Duration) (backend.Receipt, error) {
	if msg.Target.InstanceID == "" {
		return backend.Receipt{}, errors.New("memory: send work item: empty target instance ID")
	}
	return b.send(ctx, b.WorkItemQueueName(), &msg, delay)
}

func (b *Backend) send(ctx context.Context, queueName string, msg *backend.Message, delay time.Duration) (backend.Receipt, error) {
	op := "send to " + queueName
	if err := ctxErr(ctx, op); err != nil {
		return backend.Receipt{}, err
	}
	if delay > maxVisibility {
		return backend.Receipt{}, fmt.Errorf("memory: %s: delay %v exceeds the queue limit of 7 days", op, delay)
	}
	stored, err := storedMessage(msg)
	if err != nil {
		return backend.Receipt{}, fmt.Errorf("memory: %s: %s event: %w", op, msg.Event.Type, err)
	}
	stored.ActivityID, stored.SequenceNumber = newGUID(), int64(b.st.seq.Add(1))
	body, err := json.Marshal(&stored)
	if err != nil {
		return backend.Receipt{}, fmt.Errorf("memory: %s: encode message: %w", op, err)
	}
	return b.put(op, queueName, string(body), delay)
}

// SendRaw puts body on queue as it is, invisible for delay, the way another
// writer (or a damaged one) could: a test hook for messages that do not
// decode. A body that does not decode as this backend's message format is
// received as backend.Undecodable.
func (b *Backend) SendRaw(queue, body string, delay time.Duration) (backend.Receipt, error) {
	if delay > maxVisibility {
		return backend.Receipt{}, fmt.Errorf("memory: send raw message to %s: delay %v exceeds the queue limit of 7 days", queue, delay)
	}
	return b.put("send raw message to "+queue, queue, body, delay)
}

func (b *Backend) put(op, queueName, body string, delay time.Duration) (backend.Receipt, error) {
	h := b.h
	h.mu.Lock()
	defer h.mu.Unlock()
	q, err := b.queueOf(op, queueName)
	if err != nil {
		return backend.Receipt{}, err
	}
	now := b.st.now()
	m := &message{id: newGUID(), pop: b.st.token(), body: body, inserted: now, visible: now.Add(seconds(delay))}
	q.msgs = append(q.msgs, m)
	q.byID[m.id] = m
	if seconds(delay) == 0 {
		q.signal()
	}
	return backend.Receipt{Queue: queueName, MessageID: m.id, PopReceipt: m.pop, NextVisible: reported(m.visible)}, nil
}

// ReceiveControl takes up to limit (at most 32) visible messages from
// control queue partition, in insertion order, and hides them for
// visibility (rounded up to whole seconds, at least 1 s). Messages that
// cannot be decoded are hidden as well and returned as undecodable.
func (b *Backend) ReceiveControl(ctx context.Context, partition, limit int, visibility time.Duration) ([]backend.Received, []backend.Undecodable, error) {
	if partition < 0 || partition >= b.partitions {
		return nil, nil, fmt.Errorf("memory: partition %d is outside 0..%d", partition, b.partitions-1)
	}
	return b.receive(ctx, b.ControlQueueName(partition), limit, visibility)
}

// ReceiveWorkItems takes up to limit (at most 32) visible activity
// messages, like ReceiveControl.
func (b *Backend) ReceiveWorkItems(ctx context.Context, limit int, visibility time.Duration) ([]backend.Received, []backend.Undecodable, error) {
	return b.receive(ctx, b.WorkItemQueueName(), limit, visibility)
}

func (b *Backend) receive(ctx context.Context, queueName string, limit int, visibility time.Duration) ([]backend.Received, []backend.Undecodable, error) {
	op := "receive from " + queueName
	if err := ctxErr(ctx, op); err != nil {
		return nil, nil, err
	}
	if visibility > maxVisibility {
		return nil, nil, fmt.Errorf("memory: %s: visibility %v exceeds the queue limit of 7 days", op, visibility)
	}
	n := min(max(limit, 1), maxDequeue)
	vis := max(seconds(visibility), time.Second)
	h := b.h
	h.mu.Lock()
	defer h.mu.Unlock()
	q, err := b.queueOf(op, queueName)
	if err != nil {
		return nil, nil, err
	}
	now := b.st.now()
	var received []backend.Received
	var undecodable []backend.Undecodable
	for _, m := range q.msgs {
		if len(received)+len(undecodable) == n {
			break
		}
		if m.deleted || m.visible.After(now) {
			continue
		}
		m.dequeues++
		m.pop = b.st.token()
		m.visible = now.Add(vis)
		r := backend.Receipt{Queue: queueName, MessageID: m.id, PopReceipt: m.pop, NextVisible: reported(m.visible)}
		msg, target, eventType, err := decodeMessage(m.body)
		if err != nil {
			undecodable = append(undecodable, backend.Undecodable{
				Receipt: r, DequeueCount: m.dequeues, InsertedAt: reported(m.inserted), Body: m.body,
				Target: target, EventType: eventType,
				Reason: fmt.Errorf("memory: undecodable message %s in %s: %w", m.id, queueName, err),
			})
			continue
		}
		received = append(received, backend.Received{Message: msg, Receipt: r, DequeueCount: m.dequeues, InsertedAt: reported(m.inserted), Body: m.body})
	}
	return received, undecodable, nil
}

// DeleteMessage removes a message. A message (or queue) already gone is not
// an error; a stale pop receipt (the message was received or re-hidden
// since) is backend.ErrConflict, and the message stays.
func (b *Backend) DeleteMessage(ctx context.Context, r backend.Receipt) error {
	op := fmt.Sprintf("delete message %s from %s", r.MessageID, r.Queue)
	if err := ctxErr(ctx, op); err != nil {
		return err
	}
	h := b.h
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.queues[r.Queue]
	if q == nil {
		return nil
	}
	m := q.byID[r.MessageID]
	switch {
	case m == nil:
		return nil
	case m.pop != r.PopReceipt:
		return fmt.Errorf("memory: %s: the pop receipt is stale: %w", op, backend.ErrConflict)
	}
	q.remove(m)
	return nil
}

// SetVisibility hides the message for d from now (rounded up to whole
// seconds; 0 makes it visible at once) and returns the new receipt: the old
// pop receipt is stale from then on. ErrNotFound when the message is gone,
// ErrConflict when the pop receipt is stale.
func (b *Backend) SetVisibility(ctx context.Context, r backend.Receipt, d time.Duration) (backend.Receipt, error) {
	op := fmt.Sprintf("set visibility of message %s in %s", r.MessageID, r.Queue)
	if err := ctxErr(ctx, op); err != nil {
		return backend.Receipt{}, err
	}
	if d > maxVisibility {
		return backend.Receipt{}, fmt.Errorf("memory: %s: %v exceeds the queue limit of 7 days", op, d)
	}
	h := b.h
	h.mu.Lock()
	defer h.mu.Unlock()
	q, err := b.queueOf(op, r.Queue)
	if err != nil {
		return backend.Receipt{}, err
	}
	m := q.byID[r.MessageID]
	switch {
	case m == nil:
		return backend.Receipt{}, fmt.Errorf("memory: %s: the message is gone: %w", op, backend.ErrNotFound)
	case m.pop != r.PopReceipt:
		return backend.Receipt{}, fmt.Errorf("memory: %s: the pop receipt is stale: %w", op, backend.ErrConflict)
	}
	m.pop = b.st.token()
	m.visible = b.st.now().Add(seconds(d))
	if seconds(d) == 0 {
		q.signal()
	}
	return backend.Receipt{Queue: r.Queue, MessageID: m.id, PopReceipt: m.pop, NextVisible: reported(m.visible)}, nil
}

// Notify returns a channel that is closed the next time a message on queue
// may have become visible: a message sent without delay, or made visible by
// SetVisibility(…, 0). Messages whose delay or visibility runs out do not
// close it: a waiter should also wake at the next visibility it knows of.
// It lets a poller wait for local work without polling. An unknown queue
// gives a channel that is never closed.
func (b *Backend) Notify(queue string) <-chan struct{} {
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	if q := b.h.queues[queue]; q != nil {
		return q.notify
	}
	return make(chan struct{})
}

// Len returns the number of messages in queue, visible or hidden (0 for an
// unknown queue).
func (b *Backend) Len(queue string) int {
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	if q := b.h.queues[queue]; q != nil {
		return len(q.byID)
	}
	return 0
}

type poisonKey struct{ queue, id string }

// ParkedMessage is a message ParkPoison recorded (the Poison table row of
// azurestorage).
type ParkedMessage struct {
	Queue        string
	MessageID    string
	Reason       string
	DequeueCount int64
	InsertedAt   time.Time
	ParkedAt     time.Time
	Body         string
}

// ParkPoison records the message (by queue and message ID, replacing an
// earlier record of it) and then deletes it from its queue; see Parked.
func (b *Backend) ParkPoison(ctx context.Context, p backend.Poison) error {
	r := p.Receipt
	op := fmt.Sprintf("park message %s of %s", r.MessageID, r.Queue)
	if err := ctxErr(ctx, op); err != nil {
		return err
	}
	b.h.mu.Lock()
	if err := b.requireHub(op); err != nil {
		b.h.mu.Unlock()
		return err
	}
	b.h.poison[poisonKey{r.Queue, r.MessageID}] = ParkedMessage{
		Queue: r.Queue, MessageID: r.MessageID, Reason: truncateUnits(p.Reason, maxReasonUnits), DequeueCount: p.DequeueCount,
		InsertedAt: storageTime(p.InsertedAt), ParkedAt: storageTime(b.st.now()), Body: p.Body,
	}
	b.h.mu.Unlock()
	return b.DeleteMessage(ctx, r)
}

// Parked returns the parked messages of the hub, ordered by queue and
// message ID.
func (b *Backend) Parked() []ParkedMessage {
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	out := make([]ParkedMessage, 0, len(b.h.poison))
	for _, p := range b.h.poison {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b ParkedMessage) int {
		if c := strings.Compare(a.Queue, b.Queue); c != 0 {
			return c
		}
		return strings.Compare(a.MessageID, b.MessageID)
	})
	return out
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

// storedMessage returns msg as it comes back from a queue: its event in
// stored form, empty tags as nil.
func storedMessage(msg *backend.Message) (backend.Message, error) {
	ev, err := storedEvent(&msg.Event)
	if err != nil {
		return backend.Message{}, err
	}
	out := *msg
	out.Event = ev
	out.OrchestrationTags = stringMap(msg.OrchestrationTags)
	return out, nil
}

// decodeMessage decodes a stored body (the JSON of a backend.Message). For a
// body that does not decode it recovers what it can of the target and the
// event type, and says what is wrong.
func decodeMessage(body string) (msg backend.Message, target history.OrchestrationInstance, eventType string, err error) {
	if strings.TrimSpace(body) == "" {
		return msg, target, "", errors.New("empty message body")
	}
	var probe struct {
		Target *history.OrchestrationInstance
		Event  *struct{ Type *int }
	}
	_ = json.Unmarshal([]byte(body), &probe) // best effort: what a damaged body still tells
	if probe.Target != nil {
		target = *probe.Target
	}
	hasType := probe.Event != nil && probe.Event.Type != nil
	if hasType {
		eventType = history.EventType(*probe.Event.Type).String()
	}
	if err := json.Unmarshal([]byte(body), &msg); err != nil {
		return backend.Message{}, target, eventType, fmt.Errorf("not a message of the memory backend: %w", err)
	}
	switch {
	case !hasType:
		return backend.Message{}, target, "", errors.New("the message has no event type")
	case !msg.Event.Type.Valid():
		return backend.Message{}, target, eventType, fmt.Errorf("unknown event type %d", int(msg.Event.Type))
	case msg.Target.InstanceID == "":
		return backend.Message{}, target, eventType, errors.New("the message names no target instance")
	}
	stored, err := storedMessage(&msg)
	if err != nil {
		return backend.Message{}, target, eventType, err
	}
	return stored, target, eventType, nil
}

// ControlQueueLength returns the number of messages in control queue
// partition, hidden ones included.
func (b *Backend) ControlQueueLength(ctx context.Context, partition int) (int64, error) {
	if partition < 0 || partition >= b.partitions {
		return 0, fmt.Errorf("memory: queue length: partition %d is outside 0..%d", partition, b.partitions-1)
	}
	return b.queueLength(ctx, b.ControlQueueName(partition))
}

// WorkItemQueueLength returns the number of messages in the work-item
// queue, hidden ones included.
func (b *Backend) WorkItemQueueLength(ctx context.Context) (int64, error) {
	return b.queueLength(ctx, b.WorkItemQueueName())
}

func (b *Backend) queueLength(ctx context.Context, queueName string) (int64, error) {
	op := "queue length of " + queueName
	if err := ctxErr(ctx, op); err != nil {
		return 0, err
	}
	h := b.h
	h.mu.Lock()
	defer h.mu.Unlock()
	q, err := b.queueOf(op, queueName)
	if err != nil {
		return 0, err
	}
	return int64(len(q.byID)), nil
}
