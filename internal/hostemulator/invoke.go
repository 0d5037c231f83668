package hostemulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/handler"
)

// ErrorKind classifies an InvocationError.
type ErrorKind string

// Invocation error kinds.
const (
	// KindNotReady: no ready handler process (host stopped, handler exited
	// with code 0, or start-up took too long).
	KindNotReady ErrorKind = "not-ready"
	// KindTransport: the request to the handler failed (connection refused
	// or reset, process died mid-invocation).
	KindTransport ErrorKind = "transport"
	// KindRequestURI: the host could not build the URL of a request to
	// forward (the request named no host).
	KindRequestURI ErrorKind = "request-uri"
	// KindTimeout: the invocation exceeded the function timeout; the handler
	// process was restarted.
	KindTimeout ErrorKind = "timeout"
	// KindStatus: the handler answered with a non-2xx status.
	KindStatus ErrorKind = "status"
	// KindContentType: the reply's Content-Type is not application/json or
	// text/json (the host has no formatter for it).
	KindContentType ErrorKind = "content-type"
	// KindEmptyBody: a 2xx reply with an empty or null body. The real host
	// would hang until the function timeout; the emulator fails at once.
	KindEmptyBody ErrorKind = "empty-body"
	// KindInvalidJSON: the reply body is not a JSON object of the expected
	// shape.
	KindInvalidJSON ErrorKind = "invalid-json"
	// KindHTTPOutput: an http output value the host cannot use (not an
	// object, bad statusCode or headers).
	KindHTTPOutput ErrorKind = "http-output"
	// KindBase64Output: a string output the host would silently base64-decode
	// into bytes. The invocation does not fail; this flags a handler bug.
	KindBase64Output ErrorKind = "base64-output"
	// KindUnknownOutput: an Outputs key matching no output binding (names are
	// case-sensitive); the host ignores it silently. Does not fail.
	KindUnknownOutput ErrorKind = "unknown-output"
)

// InvocationError records one invocation failure, or one contract quirk the
// handler tripped (Failed is then false).
type InvocationError struct {
	// Time is when the problem was detected.
	Time time.Time
	// FunctionName is the invoked function.
	FunctionName string
	// InvocationID is the X-Azure-Functions-InvocationId of the attempt.
	InvocationID string
	// Kind classifies the problem.
	Kind ErrorKind
	// Failed is true when the invocation failed (an HTTP caller got 500).
	Failed bool
	// Err describes the problem.
	Err error
}

// Error describes the problem.
func (e *InvocationError) Error() string {
	return fmt.Sprintf("invocation %s of %s: %s: %v", e.InvocationID, e.FunctionName, e.Kind, e.Err)
}

// Unwrap returns the underlying error.
func (e *InvocationError) Unwrap() error { return e.Err }

// InvocationResult is a successful invocation as the host interpreted it.
type InvocationResult struct {
	// InvocationID is the X-Azure-Functions-InvocationId that was sent.
	InvocationID string
	// Outputs holds the value of each output binding, keyed by binding name,
	// after the host's ReturnValue routing ("$return", or the properties of
	// an object ReturnValue when there is no "$return" binding).
	Outputs map[string]json.RawMessage
	// Logs are the reply's Logs entries.
	Logs []string
	// ReturnValue is the reply's ReturnValue (null when absent).
	ReturnValue json.RawMessage
	// HTTP is the response built from the http output binding; nil when the
	// function has none.
	HTTP *HTTPResponse
	// Base64Decoded names the outputs whose string value the host would turn
	// into bytes (see KindBase64Output).
	Base64Decoded []string
}

// HTTPResponse is the HTTP response the host sends to the caller.
type HTTPResponse struct {
	// StatusCode is the response status.
	StatusCode int
	// Header holds the response headers (Content-Type always set).
	Header http.Header
	// Body is the response body.
	Body []byte
}

// Invoke runs any function with Data values and Metadata entries given as Go
// values; both are encoded the host's way (objects nested, strings and
// numbers double-encoded, []byte base64, time.Time with offset), Metadata
// keys ending in "trigger" and nil values are dropped, and sys is added.
func (h *Host) Invoke(ctx context.Context, functionName string, data, metadata map[string]any) (*InvocationResult, error) {
	f, ok := h.cfg.Function(functionName)
	if !ok {
		return nil, fmt.Errorf("hostemulator: no function %q", functionName)
	}
	encData := map[string]any{}
	for k, v := range data {
		enc, err := encodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("hostemulator: Data %q: %w", k, err)
		}
		encData[k] = enc
	}
	md := newFoldMap()
	for k, v := range metadata {
		md.set(k, v)
	}
	encMD, err := encodeMetadata(md, f.Name)
	if err != nil {
		return nil, fmt.Errorf("hostemulator: %w", err)
	}
	return h.invoke(ctx, f, encData, encMD)
}

// invocationContext bounds an invocation by the function timeout.
func (h *Host) invocationContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if h.functionTimeout > 0 {
		return context.WithTimeout(ctx, h.functionTimeout)
	}
	return context.WithCancel(ctx)
}

func (h *Host) setHostHeaders(req *http.Request, invocationID string) {
	req.Header.Set(handler.HeaderInvocationID, invocationID)
	req.Header.Set(handler.HeaderHostVersion, h.hostVersion)
	req.Header.Set("User-Agent", "Azure-Functions-Host/"+h.hostVersion)
}

// invoke sends one default-mode invocation and interprets the reply. Every
// failure is recorded and returned as an *InvocationError.
func (h *Host) invoke(ctx context.Context, f handler.FunctionInfo, data map[string]any, metadata *foldMap) (*InvocationResult, error) {
	id := newGUID()
	payload, err := marshal(map[string]any{"Data": data, "Metadata": metadata})
	if err != nil {
		return nil, fmt.Errorf("hostemulator: encode invocation: %w", err)
	}
	ctx, cancel := h.invocationContext(ctx)
	defer cancel()
	w, err := h.waitWorker(ctx, true)
	if err != nil {
		return nil, h.recordError(f.Name, id, KindNotReady, true, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.base+"/"+f.Name, io.NopCloser(bytes.NewReader(payload)))
	if err != nil {
		return nil, fmt.Errorf("hostemulator: %w", err)
	}
	req.ContentLength = -1 // chunked, like the host's ObjectContent
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	h.setHostHeaders(req, id)
	resp, err := w.client().Do(req)
	if err != nil {
		return nil, h.transportFailure(ctx, w, f.Name, id, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, h.transportFailure(ctx, w, f.Name, id, err)
	}
	res, kind, err := interpretReply(f, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if err != nil {
		return nil, h.recordError(f.Name, id, kind, true, err)
	}
	res.InvocationID = id
	for _, name := range res.Base64Decoded {
		h.recordError(f.Name, id, KindBase64Output, false,
			fmt.Errorf("output %q is a string the host would base64-decode into bytes; send JSON text instead", name))
	}
	for _, name := range unknownOutputs(f, res) {
		h.recordError(f.Name, id, KindUnknownOutput, false,
			fmt.Errorf("Outputs key %q matches no output binding of function.json (names are case-sensitive); the host ignores it", name))
	}
	for _, l := range res.Logs {
		h.logs.add(LogLine{Source: SourceFunction, Level: slog.LevelInfo, Text: l, Function: f.Name})
	}
	return res, nil
}

// transportFailure records a failed exchange; a function timeout also
// restarts the handler process.
func (h *Host) transportFailure(ctx context.Context, w *worker, function, id string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		h.logs.hostf(slog.LevelError, "invocation %s of %s exceeded the function timeout %v; restarting the handler", id, function, h.functionTimeout)
		h.dispose(w)
		return h.recordError(function, id, KindTimeout, true, fmt.Errorf("function timeout %v exceeded: %w", h.functionTimeout, err))
	}
	return h.recordError(function, id, KindTransport, true, err)
}

func (h *Host) recordError(function, id string, kind ErrorKind, failed bool, err error) error {
	ie := &InvocationError{Time: time.Now(), FunctionName: function, InvocationID: id, Kind: kind, Failed: failed, Err: err}
	h.mu.Lock()
	h.invErrs = append(h.invErrs, *ie)
	h.mu.Unlock()
	level := slog.LevelError
	if !failed {
		level = slog.LevelWarn
	}
	h.logs.hostf(level, "%v", ie)
	return ie
}

// interpretReply applies the host's checks and interpretation to a reply
// (reference 3.1-3.5). On failure it returns the error kind.
func interpretReply(f handler.FunctionInfo, status int, contentType string, body []byte) (*InvocationResult, ErrorKind, error) {
	if status < 200 || status > 299 {
		return nil, KindStatus, fmt.Errorf("handler answered HTTP %d: %s", status, snippet(body))
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || (mt != "application/json" && mt != "text/json") {
		return nil, KindContentType, fmt.Errorf("reply Content-Type %q is not application/json; the host cannot read it", contentType)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return nil, KindEmptyBody, fmt.Errorf("reply body is %q; the real host would wait until the function timeout", snippet(body))
	}
	top, err := objectFields(trimmed)
	if err != nil {
		return nil, KindInvalidJSON, fmt.Errorf("reply body is not a JSON object: %w: %s", err, snippet(body))
	}
	res := &InvocationResult{Outputs: map[string]json.RawMessage{}, ReturnValue: json.RawMessage("null")}
	var outputs json.RawMessage
	for _, kv := range top { // case-insensitive; the last spelling wins
		switch strings.ToLower(kv.key) {
		case "outputs":
			outputs = kv.val
		case "logs":
			res.Logs = nil
			if string(kv.val) != "null" {
				var items []json.RawMessage
				if err := json.Unmarshal(kv.val, &items); err != nil {
					return nil, KindInvalidJSON, fmt.Errorf("Logs is not an array: %w", err)
				}
				for _, it := range items {
					res.Logs = append(res.Logs, jsonText(it))
				}
			}
		case "returnvalue":
			res.ReturnValue = kv.val
		}
	}
	outputsPresent := len(outputs) > 0 && string(outputs) != "null"
	if outputsPresent {
		fields, err := objectFields(outputs)
		if err != nil {
			return nil, KindInvalidJSON, fmt.Errorf("Outputs is not an object: %w", err)
		}
		for _, kv := range fields {
			res.Outputs[kv.key] = kv.val
		}
	}
	hasReturn := false
	if _, ok := f.OutputBinding("$return"); ok {
		hasReturn = true
		if string(res.ReturnValue) != "null" {
			res.Outputs["$return"] = res.ReturnValue
		} else {
			delete(res.Outputs, "$return")
		}
	} else if bytes.HasPrefix(bytes.TrimSpace(res.ReturnValue), []byte("{")) {
		// The properties of an object ReturnValue become outputs.
		fields, err := objectFields(res.ReturnValue)
		if err == nil {
			for _, kv := range fields {
				if _, ok := f.OutputBinding(kv.key); ok {
					res.Outputs[kv.key] = kv.val
				}
			}
		}
	}

	for _, b := range f.Bindings {
		if strings.EqualFold(b.Direction, "in") {
			continue
		}
		val, ok := res.Outputs[b.Name]
		if strings.EqualFold(b.Type, "http") {
			switch {
			case ok:
				resp, err := interpretHTTPOutput(val, b.Name == "$return" && hasReturn)
				if err != nil {
					return nil, KindHTTPOutput, fmt.Errorf("http output %q: %w", b.Name, err)
				}
				res.HTTP = resp
			case outputsPresent:
				res.HTTP = &HTTPResponse{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, Body: []byte("{}")}
			default:
				res.HTTP = &HTTPResponse{StatusCode: http.StatusOK, Header: http.Header{}}
			}
			continue
		}
		if !ok || strings.EqualFold(b.DataType, "binary") {
			continue
		}
		var s string
		if json.Unmarshal(val, &s) == nil && isDotNetBase64(s) {
			res.Base64Decoded = append(res.Base64Decoded, b.Name)
		}
	}
	return res, "", nil
}

// interpretHTTPOutput turns an http output value into the caller's response
// (reference 3.4). A "$return" http binding also accepts a plain string body.
func interpretHTTPOutput(val json.RawMessage, isReturn bool) (*HTTPResponse, error) {
	trimmed := bytes.TrimSpace(val)
	if len(trimmed) > 0 && trimmed[0] == '"' {
		var s string
		if err := json.Unmarshal(trimmed, &s); err != nil {
			return nil, err
		}
		if st := strings.TrimSpace(s); strings.HasPrefix(st, "{") && json.Valid([]byte(st)) {
			trimmed = []byte(st)
		} else if isReturn {
			return &HTTPResponse{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, Body: []byte(s)}, nil
		} else {
			return nil, fmt.Errorf("value is a string that is not a JSON object: %s", snippet([]byte(s)))
		}
	}
	fields, err := objectFields(trimmed)
	if err != nil {
		return nil, fmt.Errorf("value is not a JSON object: %w", err)
	}
	resp := &HTTPResponse{StatusCode: http.StatusOK, Header: http.Header{}}
	for _, kv := range fields {
		switch strings.ToLower(kv.key) {
		case "statuscode":
			if string(kv.val) == "null" {
				continue
			}
			if resp.StatusCode, err = parseStatusCode(kv.val); err != nil {
				return nil, err
			}
		case "body":
			switch {
			case string(kv.val) == "null":
				resp.Body = nil
			case kv.val[0] == '"':
				var s string
				if err := json.Unmarshal(kv.val, &s); err != nil {
					return nil, err
				}
				resp.Body = []byte(s)
			default:
				var buf bytes.Buffer
				if err := json.Indent(&buf, kv.val, "", "  "); err != nil {
					return nil, err
				}
				resp.Body = buf.Bytes()
			}
		case "headers":
			if string(kv.val) == "null" {
				continue
			}
			hs, err := objectFields(kv.val)
			if err != nil {
				return nil, fmt.Errorf("headers is not an object: %w", err)
			}
			for _, hv := range hs {
				if string(hv.val) != "null" {
					resp.Header.Set(hv.key, jsonText(hv.val))
				}
			}
		}
	}
	if resp.Header.Get("Content-Type") == "" {
		resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	return resp, nil
}

// unknownOutputs lists Outputs keys that match no output binding.
func unknownOutputs(f handler.FunctionInfo, res *InvocationResult) []string {
	var names []string
	for name := range res.Outputs {
		if _, ok := f.OutputBinding(name); !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

type jsonField struct {
	key string
	val json.RawMessage
}

// objectFields decodes a JSON object into its fields in order.
func objectFields(raw []byte) ([]jsonField, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("found %v, want an object", tok)
	}
	var fields []jsonField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, err
		}
		fields = append(fields, jsonField{key, val})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the object")
	}
	return fields, nil
}

// jsonText returns a JSON string's value, or another value's JSON text.
func jsonText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

func snippet(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
