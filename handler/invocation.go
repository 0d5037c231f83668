package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Invocation is one invocation of a non-HTTP function (queueTrigger,
// timerTrigger...) as the Functions host sends it.
//
// Values in Data and Metadata follow the host's encoding: objects arrive as
// JSON objects; strings, numbers, booleans and arrays arrive as their JSON
// text inside a JSON string (a queue message "hello" is "\"hello\"", a
// DequeueCount of 1 is "1"); byte arrays and "binary" bindings as base64.
// Use DataString, MetadataString and MetadataTime rather than decoding by
// hand: they undo that encoding and tolerate hosts and documentation samples
// that encode only once.
type Invocation struct {
	// FunctionName is the function's folder name.
	FunctionName string
	// InvocationID is the host's invocation GUID.
	InvocationID string
	// Function describes the function.
	Function FunctionInfo
	// Data holds one value per input binding, keyed by binding name.
	Data map[string]json.RawMessage
	// Metadata holds the trigger metadata (never nil), including "sys".
	Metadata map[string]json.RawMessage
}

// InvocationResult is what an InvocationFunc returns.
//
// The host turns an output string that happens to be valid base64 (such as
// "test" or "1234") into bytes for non-"binary" output bindings and for a
// "$return" binding; send JSON objects or JSON-encoded text on queue and blob
// outputs to stay clear of that.
type InvocationResult struct {
	// Outputs maps output binding names (case-sensitive) to values.
	Outputs map[string]any
	// Logs are logged by the host at Information level.
	Logs []string
	// ReturnValue goes to the "$return" binding; leave it nil otherwise (the
	// host treats an object ReturnValue's properties as outputs).
	ReturnValue any
}

// InvocationFunc is the Go code behind one non-HTTP function. Returning an
// error fails the invocation (a queue message is then retried).
type InvocationFunc func(ctx context.Context, inv *Invocation) (*InvocationResult, error)

// TriggerValue returns the trigger binding's raw value.
func (inv *Invocation) TriggerValue() (json.RawMessage, bool) {
	return lookupFold(inv.Data, inv.Function.TriggerName)
}

// DataString decodes the string value of input binding name (see
// DecodeString).
func (inv *Invocation) DataString(name string) (string, bool) {
	raw, ok := lookupFold(inv.Data, name)
	if !ok {
		return "", false
	}
	return DecodeString(raw), true
}

// MetadataString decodes the string value of a metadata key, matched
// case-insensitively (see DecodeString).
func (inv *Invocation) MetadataString(key string) (string, bool) {
	raw, ok := lookupFold(inv.Metadata, key)
	if !ok {
		return "", false
	}
	return DecodeString(raw), true
}

// MetadataTime parses a timestamp metadata value leniently (see ParseTime).
func (inv *Invocation) MetadataTime(key string) (time.Time, error) {
	s, ok := inv.MetadataString(key)
	if !ok {
		return time.Time{}, fmt.Errorf("metadata %q is absent", key)
	}
	return ParseTime(s)
}

// DecodeString undoes the host's encoding of a string-like value exactly
// once: raw is a JSON string whose content is the value's JSON text, so a
// content that is itself a JSON string literal is decoded once more
// ("\"hello\"" -> hello), while any other content is returned as is
// ("1" -> 1, "{\"a\":1}" -> {"a":1}, and single-encoded "hello" -> hello).
// A raw value that is not a JSON string is returned as its JSON text; null
// and absent values give "".
func DecodeString(raw json.RawMessage) string {
	text := strings.TrimSpace(string(raw))
	if text == "" || text == "null" {
		return ""
	}
	var outer string
	if json.Unmarshal(raw, &outer) != nil {
		return text
	}
	var inner string
	if strings.HasPrefix(outer, `"`) && json.Unmarshal([]byte(outer), &inner) == nil {
		return inner
	}
	return outer
}
