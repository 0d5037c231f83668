package azurestorage

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestMessageRoundTripEveryEventType(t *testing.T) {
	events := sampleEvents()
	if len(events) != 22 {
		t.Fatalf("sampleEvents covers %d types, want all 22", len(events))
	}
	for i, ev := range events {
		t.Run(ev.Type.String(), func(t *testing.T) {
			msg := backend.Message{
				Event:             ev,
				Target:            history.OrchestrationInstance{InstanceID: "order/42", ExecutionID: "exec-1"},
				Sender:            history.OrchestrationInstance{InstanceID: "sender", ExecutionID: "exec-s"},
				Episode:           i,
				OrchestrationTags: map[string]string{"tag": "value"},
			}
			body, err := encodeMessage(&msg, "5406d369-0000-4000-8000-000000000001", int64(100+i))
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeMessage(string(body))
			if err != nil {
				t.Fatalf("decode: %v\n%s", err, body)
			}
			msg.ActivityID, msg.SequenceNumber = "5406d369-0000-4000-8000-000000000001", int64(100+i)
			if !reflect.DeepEqual(got, msg) {
				t.Errorf("round trip mismatch\n got %#v\nwant %#v\nJSON %s", got, msg, body)
			}
			if got.Event.Type.ClassName() == "" || !bytes.Contains(body, []byte(`"$type":"DurableTask.Core.History.`+ev.Type.ClassName()+`"`)) {
				t.Errorf("event $type missing in %s", body)
			}
			checkTypeFirst(t, body)
		})
	}
}

// checkTypeFirst asserts that every JSON object in data starts with a
// "$type" member, except Sender and string dictionaries.
func checkTypeFirst(t *testing.T, data []byte) {
	t.Helper()
	exempt := map[string]bool{"Sender": true, "Tags": true, "OrchestrationTags": true, "Properties": true}
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func(key string) error
	walk = func(key string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			first := true
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				if first && !exempt[key] && k != "$type" {
					return fmt.Errorf("object %q starts with %q, not $type", key, k)
				}
				if exempt[key] && k == "$type" {
					return fmt.Errorf("object %q carries a $type", key)
				}
				first = false
				if err := walk(k.(string)); err != nil {
					return err
				}
			}
			if first && !exempt[key] {
				return fmt.Errorf("object %q is empty, without $type", key)
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(key); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	if err := walk(""); err != nil {
		t.Errorf("%v in %s", err, data)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Errorf("trailing data after the message: %v", err)
	}
}

func TestEncodeStartMessageShape(t *testing.T) {
	ev := history.NewEvent(history.ExecutionStarted, ts(0, 1234567))
	ev.Instance = history.OrchestrationInstance{InstanceID: "abc", ExecutionID: "aae3f9da"}
	ev.Name, ev.Input = "MyOrch", `"hello"`
	ev.Generation = ptr(int32(0))
	msg := backend.Message{Event: ev, Target: ev.Instance}
	body, err := encodeMessage(&msg, "5406d369-1111-4222-8333-444455556666", 40)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"$type":"DurableTask.AzureStorage.MessageData","ActivityId":"5406d369-1111-4222-8333-444455556666","TaskMessage":{` +
		`"$type":"DurableTask.Core.TaskMessage","Event":{"$type":"DurableTask.Core.History.ExecutionStartedEvent",` +
		`"OrchestrationInstance":{"$type":"DurableTask.Core.OrchestrationInstance","InstanceId":"abc","ExecutionId":"aae3f9da"},` +
		`"EventType":0,"ParentInstance":null,"Name":"MyOrch","Version":"","Input":"\"hello\"","Tags":null,` +
		`"Correlation":null,"ParentTraceContext":null,"ScheduledStartTime":null,"Generation":0,"GenerateNewTrace":false,` +
		`"EventId":-1,"IsPlayed":false,"Timestamp":"2024-05-01T10:00:00.1234567Z"},` +
		`"SequenceNumber":0,"OrchestrationInstance":{"$type":"DurableTask.Core.OrchestrationInstance","InstanceId":"abc","ExecutionId":"aae3f9da"},` +
		`"OrchestrationExecutionContext":null},` +
		`"CompressedBlobName":null,"SequenceNumber":40,"Sender":{"InstanceId":"","ExecutionId":""},"SerializableTraceContext":null}`
	if string(body) != want {
		t.Errorf("encoded start message\n got %s\nwant %s", body, want)
	}
}

func TestEncodeMessageDetails(t *testing.T) {
	ev := history.NewEvent(history.EventRaised, ts(0, 5000000))
	ev.Name, ev.Input = "ev", "\"line\u2028sep \ufffe <&>\""
	msg := backend.Message{Event: ev, Target: history.OrchestrationInstance{InstanceID: "x"}, Episode: 0}
	body, err := encodeMessage(&msg, "g", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"ExecutionId":null`,                   // management messages address the current execution
		`"Timestamp":"2024-05-01T10:00:00.5Z"`, // at most 7 digits, zeros trimmed
		`\u2028`, `\ufffe`, `<&>`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("encoded message lacks %s: %s", want, body)
		}
	}
	if strings.Contains(string(body), `"Episode"`) {
		t.Errorf("Episode 0 must be omitted: %s", body)
	}
	msg.Episode = 3
	body, _ = encodeMessage(&msg, "g", 1)
	if !strings.Contains(string(body), `"SequenceNumber":1,"Episode":3,"Sender"`) {
		t.Errorf("Episode not written after SequenceNumber: %s", body)
	}
}

// dtfxStart is a start message as Durable Task writes it (section 2.2 of
// the protocol reference), with a .NET Framework dictionary type name.
const dtfxStart = `{"$type":"DurableTask.AzureStorage.MessageData","ActivityId":"5406d369-4b57-4b7c-9bcd-8a1ec4bd4d4a","TaskMessage":{
  "$type":"DurableTask.Core.TaskMessage","Event":{"$type":"DurableTask.Core.History.ExecutionStartedEvent",
    "OrchestrationInstance":{"$type":"DurableTask.Core.OrchestrationInstance","InstanceId":"abc","ExecutionId":"aae3f9da0b1c4d5e8f9a0b1c2d3e4f50"},
    "EventType":0,"ParentInstance":null,"Name":"MyOrch","Version":"","Input":"\"hello\"",
    "Tags":{"$type":"System.Collections.Generic.Dictionary` + "`" + `2[[System.String, mscorlib],[System.String, mscorlib]], mscorlib","k":"v"},
    "Correlation":null,"ParentTraceContext":null,"ScheduledStartTime":null,"Generation":0,"GenerateNewTrace":false,
    "EventId":-1,"IsPlayed":false,"Timestamp":"2024-05-01T10:00:00.1234567Z"},
  "SequenceNumber":0,"OrchestrationInstance":{"$type":"DurableTask.Core.OrchestrationInstance","InstanceId":"abc","ExecutionId":"aae3f9da0b1c4d5e8f9a0b1c2d3e4f50"}},
 "CompressedBlobName":null,"SequenceNumber":40,"Sender":{"InstanceId":"","ExecutionId":""},"SerializableTraceContext":null}`

func TestDecodeDTFxStartMessage(t *testing.T) {
	inst := history.OrchestrationInstance{InstanceID: "abc", ExecutionID: "aae3f9da0b1c4d5e8f9a0b1c2d3e4f50"}
	want := backend.Message{
		Event: history.Event{Type: history.ExecutionStarted, EventID: -1, Timestamp: ts(0, 1234567),
			Instance: inst, Name: "MyOrch", Input: `"hello"`, Tags: map[string]string{"k": "v"}, Generation: ptr(int32(0))},
		Target:         inst,
		ActivityID:     "5406d369-4b57-4b7c-9bcd-8a1ec4bd4d4a",
		SequenceNumber: 40,
	}
	for name, body := range map[string]string{
		"raw":                dtfxStart,
		"base64":             base64.StdEncoding.EncodeToString([]byte(dtfxStart)),
		"base64 unpadded":    base64.RawStdEncoding.EncodeToString([]byte(dtfxStart + " ")),
		"raw with BOM/space": "\ufeff \n" + dtfxStart,
	} {
		t.Run(name, func(t *testing.T) {
			got, err := decodeMessage(body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %#v\nwant %#v", got, want)
			}
		})
	}
}

func TestDecodeTolerance(t *testing.T) {
	// No $type on nested objects, $type not first, enum names, extra
	// members, a work-item message with tags and episode.
	body := `{"ActivityId":"a","SequenceNumber":"7","Episode":2,"Unknown":{"x":[1,2]},
	  "Sender":{"InstanceId":"parent","ExecutionId":"pe"},
	  "TaskMessage":{"OrchestrationInstance":{"ExecutionId":"e1","InstanceId":"i1"},
	    "OrchestrationExecutionContext":{"OrchestrationTags":{"t":"1"}},
	    "Event":{"Name":"Act","EventType":"TaskScheduled","EventId":3,"Input":"[1]","Timestamp":"2024-05-01T10:00:01Z","Extra":true}}}`
	got, err := decodeMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	want := backend.Message{
		Event:  history.Event{Type: history.TaskScheduled, EventID: 3, Timestamp: ts(1, 0), Name: "Act", Input: "[1]"},
		Target: history.OrchestrationInstance{InstanceID: "i1", ExecutionID: "e1"}, Sender: history.OrchestrationInstance{InstanceID: "parent", ExecutionID: "pe"},
		Episode: 2, ActivityID: "a", SequenceNumber: 7, OrchestrationTags: map[string]string{"t": "1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}

	// Status as a name, $type carrying an assembly name and decisive over EventType.
	body = `{"TaskMessage":{"OrchestrationInstance":{"InstanceId":"i"},"Event":{
	  "$type":"DurableTask.Core.History.ExecutionCompletedEvent, DurableTask.Core","EventType":5,
	  "OrchestrationStatus":"Terminated","Result":"\"bye\"","FailureDetails":null,"EventId":1}}}`
	got, err = decodeMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	if got.Event.Type != history.ExecutionCompleted || got.Event.Status != history.StatusTerminated || got.Event.Result != `"bye"` || got.Event.EventID != 1 {
		t.Errorf("got %#v", got.Event)
	}
}

func TestDecodeUndecodable(t *testing.T) {
	valid := func(edit func(string) string) string { return edit(dtfxStart) }
	tests := []struct {
		name, body, want string
		is               error
	}{
		{"empty", "", "empty message body", nil},
		{"garbage text", "hello world!", "neither JSON", nil},
		{"base64 of text", base64.StdEncoding.EncodeToString([]byte("hello")), "does not decode to a JSON object", nil},
		{"broken JSON", `{"ActivityId":`, "not valid JSON", nil},
		{"JSON array", `[1,2]`, "neither JSON", nil},
		{"not MessageData", `{"hello":"world"}`, "TaskMessage is missing", nil},
		{"no target", `{"TaskMessage":{"Event":{"EventType":12}}}`, "InstanceId is missing", nil},
		{"no event", `{"TaskMessage":{"OrchestrationInstance":{"InstanceId":"i"}}}`, "Event is missing", nil},
		{"unknown event type", `{"TaskMessage":{"OrchestrationInstance":{"InstanceId":"i"},"Event":{"$type":"Foo.Bar","EventType":99}}}`, "no known $type or EventType", nil},
		{"bad date", valid(func(s string) string { return strings.Replace(s, "2024-05-01T10:00:00.1234567Z", "yesterday", 1) }), "Timestamp", nil},
		{"bad event id", valid(func(s string) string { return strings.Replace(s, `"EventId":-1`, `"EventId":"x"`, 1) }), "EventId is not an integer", nil},
		{"large message", `{"$type":"DurableTask.AzureStorage.MessageData","ActivityId":"00000000-0000-0000-0000-000000000000","TaskMessage":null,"CompressedBlobName":"abc/message-1-ExecutionStarted.json.gz","SequenceNumber":1}`,
			"abc/message-1-ExecutionStarted.json.gz", ErrLargeMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeMessage(tt.body)
			if err == nil {
				t.Fatalf("no error decoding %q", tt.body)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
		})
	}
}

func TestEncodeRejectsUnknownEventType(t *testing.T) {
	msg := backend.Message{Event: history.Event{Type: 42}, Target: history.OrchestrationInstance{InstanceID: "i"}}
	if _, err := encodeMessage(&msg, "g", 1); err == nil {
		t.Fatal("no error for an unknown event type")
	}
}

func TestNewGUID(t *testing.T) {
	a, b := newGUID(), newGUID()
	if a == b || len(a) != 36 || a[14] != '4' || strings.Count(a, "-") != 4 {
		t.Fatalf("bad GUIDs %q %q", a, b)
	}
}

func TestSalvageTarget(t *testing.T) {
	tests := []struct {
		name, body, blob string
		want             history.OrchestrationInstance
		event            string
	}{
		{"garbage", "hello world!", "", history.OrchestrationInstance{}, ""},
		{"broken JSON", `{"TaskMessage":`, "", history.OrchestrationInstance{}, ""},
		{"unknown class", `{"TaskMessage":{"OrchestrationInstance":{"InstanceId":"i1","ExecutionId":"e1"},"Event":{"$type":"Foo.Bar, Foo","EventType":99}}}`, "",
			history.OrchestrationInstance{InstanceID: "i1", ExecutionID: "e1"}, "Bar"},
		{"unknown number", `{"TaskMessage":{"OrchestrationInstance":{"InstanceId":"i2"},"Event":{"EventType":99}}}`, "",
			history.OrchestrationInstance{InstanceID: "i2"}, "EventType 99"},
		{"known number, bad member", `{"TaskMessage":{"OrchestrationInstance":{"InstanceId":"i3"},"Event":{"EventType":5,"EventId":"x"}}}`, "",
			history.OrchestrationInstance{InstanceID: "i3"}, "TaskCompleted"},
		{"base64", base64.StdEncoding.EncodeToString([]byte(`{"TaskMessage":{"OrchestrationInstance":{"InstanceId":"i4"},"Event":{"EventType":"Nope"}}}`)), "",
			history.OrchestrationInstance{InstanceID: "i4"}, "Nope"},
		{"no event", `{"TaskMessage":{"OrchestrationInstance":{"InstanceId":"i5"}}}`, "", history.OrchestrationInstance{InstanceID: "i5"}, ""},
		{"wrapper", "ignored", "a^0b/message-0123abcd-EventRaised.json.gz", history.OrchestrationInstance{InstanceID: "a/b"}, "EventRaised"},
		{"odd blob name", "ignored", "no-prefix.json.gz", history.OrchestrationInstance{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, event := salvageTarget(tt.body, tt.blob)
			if got != tt.want || event != tt.event {
				t.Errorf("salvageTarget = %+v, %q; want %+v, %q", got, event, tt.want, tt.event)
			}
		})
	}
}
