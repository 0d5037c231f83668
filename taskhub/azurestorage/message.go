package azurestorage

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// ErrLargeMessage is wrapped by the poison reason of a queue message whose
// payload was offloaded to a blob (CompressedBlobName set) that is missing or
// does not hold a valid gzipped message.
var ErrLargeMessage = errors.New("the blob of a large message is unreadable")

// offloadedError is what decodeMessage returns for a wrapper message: the
// payload is in blob storage. It wraps ErrLargeMessage for callers that do
// not fetch the blob.
type offloadedError struct{ blob string }

func (e *offloadedError) Error() string {
	return fmt.Sprintf("the message payload is in blob %q (CompressedBlobName)", e.blob)
}

func (e *offloadedError) Unwrap() error { return ErrLargeMessage }

// emptyGUID is the ActivityId of a large-message wrapper.
const emptyGUID = "00000000-0000-0000-0000-000000000000"

// messageSequence numbers the messages this process sends, like Durable
// Task's process-wide MessageData.SequenceNumber.
var messageSequence atomic.Int64

// newGUID returns a random (version 4) GUID in the usual 8-4-4-4-12 form.
func newGUID() string {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		panic("azurestorage: crypto/rand failed: " + err.Error())
	}
	u[6] = u[6]&0x0F | 0x40
	u[8] = u[8]&0x3F | 0x80
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	return string(buf[:])
}

// encodeMessage renders msg as the raw JSON of a Durable Task MessageData
// with the given ActivityId and SequenceNumber (msg.ActivityID and
// msg.SequenceNumber are not used).
func encodeMessage(msg *backend.Message, activityID string, sequence int64) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(512 + len(msg.Event.Input) + len(msg.Event.Result))
	o := beginObject(&b, typeMessageData)
	o.str("ActivityId", activityID)

	o.key("TaskMessage")
	tm := beginObject(&b, typeTaskMessage)
	tm.key("Event")
	if err := writeQueueEvent(&b, &msg.Event); err != nil {
		return nil, err
	}
	tm.int("SequenceNumber", 0)
	tm.key("OrchestrationInstance")
	writeInstance(&b, msg.Target, true)
	if len(msg.OrchestrationTags) == 0 {
		tm.null("OrchestrationExecutionContext")
	} else {
		tm.key("OrchestrationExecutionContext")
		ec := beginObject(&b, typeExecutionContext)
		ec.stringMap("OrchestrationTags", msg.OrchestrationTags)
		ec.end()
	}
	tm.end()

	o.null("CompressedBlobName")
	o.int("SequenceNumber", sequence)
	if msg.Episode != 0 {
		o.int("Episode", int64(msg.Episode))
	}
	// Sender carries no $type, and clients send empty strings.
	o.key("Sender")
	sender := beginObject(&b, "")
	sender.str("InstanceId", msg.Sender.InstanceID)
	sender.str("ExecutionId", msg.Sender.ExecutionID)
	sender.end()
	o.null("SerializableTraceContext")
	o.end()
	return b.Bytes(), nil
}

// encodeWrapper renders the queue message that stands for a message
// offloaded to blob: a MessageData whose only meaningful member is
// CompressedBlobName, as Durable Task writes it (no TaskMessage, no Sender).
func encodeWrapper(blob string) []byte {
	var b bytes.Buffer
	o := beginObject(&b, typeMessageData)
	o.str("ActivityId", emptyGUID)
	o.null("TaskMessage")
	o.str("CompressedBlobName", blob)
	o.int("SequenceNumber", 0)
	o.null("SerializableTraceContext")
	o.end()
	return b.Bytes()
}

// decodeMessage parses a queue message body: raw JSON (starting with '{') or
// base64 of it. The error names what is wrong.
func decodeMessage(body string) (backend.Message, error) {
	text := trimText(body)
	if text == "" {
		return backend.Message{}, errors.New("empty message body")
	}
	if text[0] != '{' {
		decoded, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			decoded, err = base64.RawStdEncoding.DecodeString(text)
		}
		if err != nil {
			return backend.Message{}, errors.New("message body is neither JSON (does not start with '{') nor base64")
		}
		text = trimText(string(decoded))
		if text == "" || text[0] != '{' {
			return backend.Message{}, errors.New("message body is base64 but does not decode to a JSON object")
		}
	}
	var md members
	if err := json.Unmarshal([]byte(text), &md); err != nil {
		return backend.Message{}, fmt.Errorf("message body is not valid JSON: %w", err)
	}
	msg, err := md.decodeMessageData()
	var offloaded *offloadedError
	if errors.As(err, &offloaded) {
		return backend.Message{}, err
	}
	if err != nil {
		return backend.Message{}, fmt.Errorf("message body is not a Durable Task MessageData: %w", err)
	}
	return msg, nil
}

// trimText drops surrounding white space and a byte-order mark.
func trimText(s string) string {
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "\ufeff"))
}

func (md members) decodeMessageData() (backend.Message, error) {
	var msg backend.Message
	blob, err := md.str("CompressedBlobName")
	if err != nil {
		return msg, err
	}
	if blob != "" {
		return msg, &offloadedError{blob: blob}
	}
	if msg.ActivityID, err = md.str("ActivityId"); err != nil {
		return msg, err
	}
	if msg.SequenceNumber, err = md.int64("SequenceNumber"); err != nil {
		return msg, err
	}
	var episode int32
	if episode, err = md.int32("Episode"); err != nil {
		return msg, err
	}
	msg.Episode = int(episode)
	if msg.Sender, err = md.instance("Sender"); err != nil {
		return msg, err
	}
	tm, err := md.object("TaskMessage")
	if err != nil {
		return msg, err
	}
	if tm == nil {
		return msg, errors.New("TaskMessage is missing")
	}
	if msg.Target, err = tm.instance("OrchestrationInstance"); err != nil {
		return msg, fmt.Errorf("TaskMessage.%w", err)
	}
	if msg.Target.InstanceID == "" {
		return msg, errors.New("TaskMessage.OrchestrationInstance.InstanceId is missing")
	}
	ec, err := tm.object("OrchestrationExecutionContext")
	if err != nil {
		return msg, fmt.Errorf("TaskMessage.%w", err)
	}
	if ec != nil {
		if msg.OrchestrationTags, err = ec.stringMap("OrchestrationTags"); err != nil {
			return msg, fmt.Errorf("TaskMessage.OrchestrationExecutionContext.%w", err)
		}
	}
	ev, err := tm.object("Event")
	if err != nil {
		return msg, fmt.Errorf("TaskMessage.%w", err)
	}
	if ev == nil {
		return msg, errors.New("TaskMessage.Event is missing")
	}
	t, err := ev.eventTypeOf()
	if err != nil {
		return msg, fmt.Errorf("TaskMessage.Event: %w", err)
	}
	if msg.Event, err = ev.decodeEvent(t, mTimestamp); err != nil {
		return msg, fmt.Errorf("TaskMessage.Event: %w", err)
	}
	return msg, nil
}

// salvageTarget recovers what it can of the instance and event type an
// undecodable message names, so that the instance it belongs to can be told:
// from the TaskMessage of a JSON body, or, for a large message whose blob is
// unreadable, from the blob name "{escaped instance ID}/message-{id}-{EventType}.json.gz".
// Whatever cannot be recovered stays empty.
func salvageTarget(body, blob string) (target history.OrchestrationInstance, eventType string) {
	if blob != "" {
		pk, file, ok := strings.Cut(blob, "/message-")
		if !ok || pk == "" {
			return target, ""
		}
		if id, err := unescapeKey(pk); err == nil {
			target.InstanceID = id
		}
		file = strings.TrimSuffix(file, blobNameSuffix)
		if _, t, ok := strings.Cut(file, "-"); ok {
			eventType = t
		}
		return target, eventType
	}
	text := trimText(body)
	if text != "" && text[0] != '{' {
		decoded, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return target, ""
		}
		text = trimText(string(decoded))
	}
	var md members
	if json.Unmarshal([]byte(text), &md) != nil {
		return target, ""
	}
	tm, err := md.object("TaskMessage")
	if err != nil || tm == nil {
		return target, ""
	}
	if inst, err := tm.instance(mOrchestrationInstance); err == nil {
		target = inst
	}
	ev, err := tm.object("Event")
	if err != nil || ev == nil {
		return target, ""
	}
	if class, err := ev.str("$type"); err == nil && class != "" {
		class, _, _ = strings.Cut(class, ",")
		class = strings.TrimSpace(class)
		return target, class[strings.LastIndexByte(class, '.')+1:]
	}
	if v := ev[mEventType]; !isNull(v) {
		var name string
		if json.Unmarshal(v, &name) == nil {
			return target, name
		}
		var n int
		if json.Unmarshal(v, &n) == nil && history.EventType(n).Valid() {
			return target, history.EventType(n).String()
		}
		return target, "EventType " + string(v)
	}
	return target, ""
}
