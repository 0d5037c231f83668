package apiclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors for the HTTP status classes of the management API. An
// [*APIError] matches the one for its status code with [errors.Is]:
//
//	if errors.Is(err, apiclient.ErrNotFound) { ... }
var (
	// ErrBadRequest: 400, the request was malformed (bad instance ID,
	// invalid JSON, an unknown runtime status, a missing createdTimeFrom on
	// a bulk purge, ...).
	ErrBadRequest = errors.New("apiclient: bad request")
	// ErrUnauthorized: 401, the function key is missing or wrong (see
	// [WithKey]).
	ErrUnauthorized = errors.New("apiclient: unauthorized")
	// ErrNotFound: 404, no such instance, or no such orchestrator.
	ErrNotFound = errors.New("apiclient: not found")
	// ErrConflict: 409, an instance with that ID is still running (start),
	// or the operation conflicts with the instance's state.
	ErrConflict = errors.New("apiclient: conflict")
	// ErrGone: 410, the instance has already finished (raise event,
	// terminate, suspend, resume, rewind of a finished instance).
	ErrGone = errors.New("apiclient: instance finished")
	// ErrPreconditionFailed: 412, e.g. rewinding an instance that has not
	// failed.
	ErrPreconditionFailed = errors.New("apiclient: precondition failed")
	// ErrStillRunning is returned by [Client.StartAndWait] together with the
	// instance's current status when it did not finish within the timeout.
	ErrStillRunning = errors.New("apiclient: instance still running after the wait timeout")
)

// APIError is an error answer of the management API: any response whose
// status code the operation does not expect. Code and Message come from
// the JSON error body {"error":{"code":...,"message":...}}; for a body
// that is not in that shape Code is empty and Message holds the start of
// the body text (or the HTTP status text when the body is empty).
type APIError struct {
	// StatusCode is the HTTP status code, e.g. 404.
	StatusCode int
	// Code is the API's machine-readable error code, e.g. "NotFound",
	// "InvalidInstanceId", "OrchestratorNotFound", "InstanceFinished".
	Code string
	// Message is the human-readable explanation.
	Message string
	// Method and URL identify the request that failed.
	Method, URL string
}

// Error formats the error as "METHOD URL: 404 NotFound: message".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("durable API ")
	if e.Method != "" {
		b.WriteString(e.Method + " " + e.URL + ": ")
	}
	fmt.Fprintf(&b, "%d", e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Is reports whether target is the sentinel error of e's status code
// (ErrBadRequest, ErrUnauthorized, ErrNotFound, ErrConflict, ErrGone or
// ErrPreconditionFailed).
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrGone:
		return e.StatusCode == http.StatusGone
	case ErrPreconditionFailed:
		return e.StatusCode == http.StatusPreconditionFailed
	}
	return false
}

// maxErrorText bounds how much of a non-JSON error body goes into Message.
const maxErrorText = 512

// newAPIError builds the error for a response with an unexpected status.
func newAPIError(method, rawURL string, status int, body []byte) *APIError {
	e := &APIError{StatusCode: status, Method: method, URL: rawURL}
	var eb struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error != nil {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
		return e
	}
	text := strings.TrimSpace(string(body))
	if len(text) > maxErrorText {
		text = text[:maxErrorText] + "..."
	}
	if text == "" {
		text = http.StatusText(status)
	}
	e.Message = text
	return e
}
