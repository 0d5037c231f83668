package azurestorage

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/backend/backendtest"
)

// TestConformance runs the backend conformance suite on Azurite.
func TestConformance(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		s, _ := newTestStore(t)
		return s
	}, backendtest.Options{
		Open: func(t *testing.T, b backend.Backend, app string, partitions int) backend.Backend {
			return storeFor(t, b.(*Store).hub, app, partitions)
		},
		PutRaw: func(t *testing.T, b backend.Backend, partition int, body string) {
			ttl := int32(-1)
			if _, err := b.(*Store).control[partition].EnqueueMessage(t.Context(), body, &azqueue.EnqueueMessageOptions{TimeToLive: &ttl}); err != nil {
				t.Fatal(err)
			}
		},
		Parked: func(t *testing.T, b backend.Backend, r backend.Receipt) (backendtest.ParkedMessage, bool) {
			resp, err := b.(*Store).poison.GetEntity(t.Context(), r.Queue, r.MessageID, nil)
			if err != nil {
				if isStatus(err, http.StatusNotFound) {
					return backendtest.ParkedMessage{}, false
				}
				t.Fatal(err)
			}
			row, err := parseRow(resp.Value)
			if err != nil {
				t.Fatal(err)
			}
			var p backendtest.ParkedMessage
			var errs [5]error
			p.Body, errs[0] = row.binaryOrString(colBody)
			p.Reason, errs[1] = row.str(colReason)
			p.DequeueCount, errs[2] = row.int64(colDequeueCount)
			p.InsertedAt, errs[3] = row.time(colInsertedTime)
			p.ParkedAt, errs[4] = row.time(colParkedTime)
			if err := errors.Join(errs[:]...); err != nil {
				t.Fatalf("parked row of %s: %v", r.MessageID, err)
			}
			return p, true
		},
		Wakes: func(t *testing.T, b backend.Backend) []backend.WakeMessage {
			s := b.(*Store)
			resp, err := s.queueClient(s.WakeQueueName()).PeekMessages(t.Context(), &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr[int32](32)})
			if err != nil {
				t.Fatal(err)
			}
			var out []backend.WakeMessage
			for _, m := range resp.Messages {
				raw, err := base64.StdEncoding.DecodeString(*m.MessageText)
				if err != nil {
					t.Fatalf("wake message %q is not base64: %v", *m.MessageText, err)
				}
				var w backend.WakeMessage
				if err := json.Unmarshal(raw, &w); err != nil {
					t.Fatalf("wake message %s: %v", raw, err)
				}
				out = append(out, w)
			}
			return out
		},
	})
}
