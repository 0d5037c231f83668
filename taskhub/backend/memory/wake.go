package memory

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// SendWake puts a wake message on the hub's wake queue, invisible for delay
// (rounded up to whole seconds, at most 7 days). The text is stored as
// azurestorage stores it: the WakeMessage's JSON in base64, the Functions
// host's default queue message encoding. The receipt re-hides or deletes
// the message (SetVisibility, DeleteMessage).
func (b *Backend) SendWake(ctx context.Context, reason string, delay time.Duration) (backend.Receipt, error) {
	q := b.WakeQueueName()
	op := "send wake to " + q
	if err := ctxErr(ctx, op); err != nil {
		return backend.Receipt{}, err
	}
	if delay > maxVisibility {
		return backend.Receipt{}, fmt.Errorf("memory: %s: delay %v exceeds the queue limit of 7 days", op, delay)
	}
	body, err := json.Marshal(backend.WakeMessage{Hub: b.name, DueTime: b.st.now().Add(max(delay, 0)).UTC(), Reason: reason})
	if err != nil {
		return backend.Receipt{}, fmt.Errorf("memory: %s: %w", op, err)
	}
	return b.put(op, q, base64.StdEncoding.EncodeToString(body), delay)
}

// Wake is a message of the wake queue (see Wakes).
type Wake struct {
	// Message is the decoded text.
	Message backend.WakeMessage
	// VisibleAt is when the message is (or was) visible from.
	VisibleAt time.Time
	// Visible reports whether the message was visible when read, by the
	// storage's clock.
	Visible bool
}

// Wakes returns the messages of the hub's wake queue, visible or not, in
// insertion order. Nothing in the task hub consumes them; tests read them
// here.
func (b *Backend) Wakes() ([]Wake, error) {
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	q, err := b.queueOf("read wakes", b.WakeQueueName())
	if err != nil {
		return nil, err
	}
	var out []Wake
	now := b.st.now()
	for _, m := range q.msgs {
		if m.deleted {
			continue
		}
		w := Wake{VisibleAt: m.visible, Visible: !m.visible.After(now)}
		raw, err := base64.StdEncoding.DecodeString(m.body)
		if err == nil {
			err = json.Unmarshal(raw, &w.Message)
		}
		if err != nil {
			return nil, fmt.Errorf("memory: wake queue message %s: %w", m.id, err)
		}
		out = append(out, w)
	}
	return out, nil
}

// ReceiveWakes takes up to limit (at most 32) visible messages of the wake
// queue and hides them for visibility, as the Functions host's queue
// listener does before it invokes the wake function, and returns their
// receipts (to delete them, as the host does after the invocation). Nothing
// in the task hub consumes wakes; tests play the host with it.
func (b *Backend) ReceiveWakes(ctx context.Context, limit int, visibility time.Duration) ([]backend.Receipt, error) {
	got, undecodable, err := b.receive(ctx, b.WakeQueueName(), limit, visibility)
	if err != nil {
		return nil, err
	}
	var out []backend.Receipt
	for _, r := range got {
		out = append(out, r.Receipt)
	}
	for _, u := range undecodable { // a wake's text is not a task hub message
		out = append(out, u.Receipt)
	}
	return out, nil
}
