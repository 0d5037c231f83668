package azurestorage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// wakeTTL is how long a wake message outlives its due time: a wake nobody
// receives (no wake function, or an app run without the Functions host)
// leaves the queue by itself.
const wakeTTL = 24 * time.Hour

// SendWake puts a wake message on the wake queue, invisible for delay
// (rounded up to whole seconds, at most 7 days). The text is the
// backend.WakeMessage JSON in base64, the Functions host's default queue
// message encoding (host.json extensions.queues.messageEncoding); it expires
// a day after it becomes visible (so SetVisibility may push it at most a
// day past its first visibility). The receipt re-hides or deletes it.
func (s *Store) SendWake(ctx context.Context, reason string, delay time.Duration) (backend.Receipt, error) {
	queue := s.WakeQueueName()
	if delay > maxVisibility {
		return backend.Receipt{}, fmt.Errorf("azurestorage: send wake to %s: delay %v exceeds the queue limit of 7 days", queue, delay)
	}
	delay = max(delay, 0)
	body, err := json.Marshal(backend.WakeMessage{Hub: s.hub, DueTime: time.Now().Add(delay).UTC(), Reason: reason})
	if err != nil {
		return backend.Receipt{}, fmt.Errorf("azurestorage: send wake to %s: %w", queue, err)
	}
	vis := seconds(delay)
	ttl := vis + int32(wakeTTL/time.Second)
	resp, err := s.queueClient(queue).EnqueueMessage(ctx, base64.StdEncoding.EncodeToString(body),
		&azqueue.EnqueueMessageOptions{TimeToLive: &ttl, VisibilityTimeout: &vis})
	if err != nil {
		return backend.Receipt{}, queueError("send wake to "+queue, err)
	}
	if len(resp.Messages) != 1 || resp.Messages[0].MessageID == nil || resp.Messages[0].PopReceipt == nil {
		return backend.Receipt{}, fmt.Errorf("azurestorage: send wake to %s: the service returned no message receipt", queue)
	}
	m := resp.Messages[0]
	r := backend.Receipt{Queue: queue, MessageID: *m.MessageID, PopReceipt: *m.PopReceipt}
	if m.TimeNextVisible != nil {
		r.NextVisible = *m.TimeNextVisible
	}
	return r, nil
}
