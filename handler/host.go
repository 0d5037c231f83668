package handler

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"unicode/utf8"
)

// Headers the Functions host puts on every request to the handler.
const (
	// HeaderInvocationID carries the invocation GUID.
	HeaderInvocationID = "X-Azure-Functions-InvocationId"
	// HeaderHostVersion carries the host's file version, e.g. 4.1037.0.0.
	HeaderHostVersion = "X-Azure-Functions-HostVersion"
)

// HostHandler is the custom-handler server the Functions host talks to.
//
//   - GET / (the readiness probe and health ping) answers 200 {"status":"ready"}.
//   - POST /<FunctionName> with {"Data":{...},"Metadata":{...}} invokes a
//     function (name matched exactly, then case-insensitively). The reply is
//     always 200 application/json {"Outputs":{...},"Logs":[],"ReturnValue":...}
//     for httpTrigger functions: the function's response goes into the http
//     output binding named in function.json (into ReturnValue when it is
//     "$return"), with a string body and single-string headers. Problems
//     (undecodable payload, body over the limit, no Go code bound, panic)
//     become JSON ErrorBody responses in that output, so the caller gets a
//     clear 4xx/5xx instead of the host's bare 500.
//   - For other triggers the InvocationFunc bound with HandleInvocation runs;
//     when it returns an error, panics or is missing the reply is a non-2xx
//     JSON ErrorBody, which makes the host fail the invocation (so a queue
//     message is retried).
//   - POST /<Name> for a function this handler does not know answers
//     404 NotFound (JSON ErrorBody): the output binding's name is unknown, so
//     the host fails the invocation and the caller gets a 500; the handler
//     logs the mismatch.
//   - Any other request is the forwarded (enableForwardingHttpRequest) or
//     proxied (enableProxyingHttpRequest) shape, original method and
//     /{routePrefix}/... path: it is routed exactly like StandaloneHandler.
func (a *App) HostHandler() http.Handler {
	return http.HandlerFunc(a.serveHost)
}

func (a *App) serveHost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	invocationID := r.Header.Get(HeaderInvocationID)
	if invocationID != "" {
		ctx = context.WithValue(ctx, invocationIDKey{}, invocationID)
		r = r.WithContext(ctx)
	}
	path := r.URL.EscapedPath()
	if path == "/" && invocationID == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		writeResponse(w, JSON(http.StatusOK, map[string]string{"status": "ready"}))
		return
	}
	name, single := singleSegment(path)
	if single && r.Method == http.MethodPost {
		f, known := a.cfg.Function(name)
		forwarded := f.IsHTTPOnly() && !a.cfg.CustomHandler.Legacy &&
			(a.cfg.CustomHandler.EnableForwardingHTTPRequest || a.cfg.CustomHandler.EnableProxyingHTTPRequest)
		if known && !forwarded {
			a.serveInvocation(ctx, w, r, f)
			return
		}
		if _, allowed, ok := a.router.Route(r.Method, path); !known && !ok && len(allowed) == 0 {
			a.log.ErrorContext(ctx, "host invoked an unknown function", "function", name, "invocationId", invocationID, "appRoot", a.cfg.Root)
			writeResponse(w, Error(http.StatusNotFound, CodeNotFound,
				fmt.Sprintf("the handler has no function %q (no %s/function.json under %s)", name, name, a.cfg.Root)))
			return
		}
	}
	a.serveRoute(w, r, true)
}

// singleSegment returns the unescaped name when path is "/<name>".
func singleSegment(path string) (string, bool) {
	p := strings.TrimPrefix(path, "/")
	if p == "" || strings.Contains(p, "/") {
		return "", false
	}
	name, err := url.PathUnescape(p)
	return name, err == nil
}

// invocationPayload is the host's request body.
type invocationPayload struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// invocationReply is the handler's response body.
type invocationReply struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// httpOutput is the value of an http output binding.
type httpOutput struct {
	StatusCode int               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

func (a *App) serveInvocation(ctx context.Context, w http.ResponseWriter, r *http.Request, f FunctionInfo) {
	// The request body travels inside a JSON string: base64 or escaping can
	// make it several times larger than the body itself.
	payloadLimit := 6*a.maxBody + 1<<20
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, payloadLimit))
	var payload invocationPayload
	if err == nil {
		err = json.Unmarshal(raw, &payload)
		if err == nil && payload.Data == nil {
			err = errors.New(`no "Data" object`)
		}
	}
	if !f.IsHTTP() {
		a.serveOtherInvocation(ctx, w, f, payload, err)
		return
	}
	var resp *Response
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		resp = a.tooLarge()
	case err != nil:
		a.log.WarnContext(ctx, "undecodable invocation payload", "function", f.Name, "invocationId", InvocationID(ctx), "err", err)
		resp = Error(http.StatusInternalServerError, CodeInvalidInvocation,
			fmt.Sprintf("the handler could not decode the host's invocation of %q: %v", f.Name, err))
	default:
		req, derr := a.requestFromInvocation(f, payload)
		switch {
		case errors.As(derr, &tooLarge):
			resp = a.tooLarge()
		case derr != nil:
			a.log.WarnContext(ctx, "undecodable http request in invocation", "function", f.Name, "invocationId", InvocationID(ctx), "err", derr)
			resp = Error(http.StatusInternalServerError, CodeInvalidInvocation,
				fmt.Sprintf("the handler could not decode the HTTP request in the host's invocation of %q: %v", f.Name, derr))
		default:
			resp = a.callHTTP(ctx, f, req)
		}
	}
	a.writeHTTPReply(ctx, w, f, resp)
}

func (a *App) writeHTTPReply(ctx context.Context, w http.ResponseWriter, f FunctionInfo, resp *Response) {
	resp = resp.normalized()
	if !utf8.Valid(resp.Body) {
		a.log.WarnContext(ctx, "response body is not valid UTF-8; the Functions host can only carry text bodies, so bytes will be replaced",
			"function", f.Name, "invocationId", InvocationID(ctx))
	}
	out := httpOutput{StatusCode: resp.StatusCode, Body: string(resp.Body), Headers: map[string]string{}}
	for k, vs := range resp.Header {
		if len(vs) > 0 {
			out.Headers[k] = vs[0]
		}
	}
	reply := invocationReply{Outputs: map[string]any{}, Logs: []string{}}
	if f.HTTPOutput == "$return" {
		reply.ReturnValue = out
	} else {
		reply.Outputs[f.HTTPOutput] = out
	}
	writeResponse(w, JSON(http.StatusOK, reply))
}

// hostHTTPRequest is the HTTP request object in Data (field names are matched
// case-insensitively).
type hostHTTPRequest struct {
	URL     string          `json:"Url"`
	Method  string          `json:"Method"`
	Query   json.RawMessage `json:"Query"`
	Headers json.RawMessage `json:"Headers"`
	Params  json.RawMessage `json:"Params"`
	Body    json.RawMessage `json:"Body"`
}

// requestFromInvocation builds the Request of an httpTrigger invocation.
func (a *App) requestFromInvocation(f FunctionInfo, p invocationPayload) (*Request, error) {
	raw, ok := lookupFold(p.Data, f.TriggerName)
	if !ok {
		// Tolerate a renamed trigger: take the value that looks like a request.
		for _, v := range p.Data {
			var probe hostHTTPRequest
			if json.Unmarshal(unwrapJSONString(v), &probe) == nil && probe.URL != "" && probe.Method != "" {
				raw, ok = v, true
				break
			}
		}
	}
	if !ok {
		return nil, fmt.Errorf("Data has no %q request", f.TriggerName)
	}
	var hr hostHTTPRequest
	if err := json.Unmarshal(unwrapJSONString(raw), &hr); err != nil {
		return nil, fmt.Errorf("Data.%s: %w", f.TriggerName, err)
	}
	if hr.URL == "" || hr.Method == "" {
		return nil, fmt.Errorf("Data.%s: missing Url or Method", f.TriggerName)
	}
	u, err := url.Parse(hr.URL)
	if err != nil {
		return nil, fmt.Errorf("Data.%s.Url: %w", f.TriggerName, err)
	}
	if u.Host == "" {
		// The caller named no host (HTTP/1.0 without Host): the host then
		// sends "http:///api/...".
		u.Host = a.publicHost
	}
	req := &Request{Method: strings.ToUpper(hr.Method), URL: u, Query: u.Query(), Header: http.Header{}, Params: map[string]string{}}

	query, err := decodeMultiMap(hr.Query)
	if err != nil {
		return nil, fmt.Errorf("Data.%s.Query: %w", f.TriggerName, err)
	}
	for k, vs := range query {
		if _, inURL := req.Query[k]; !inURL {
			req.Query[k] = vs
		}
	}
	headers, err := decodeMultiMap(hr.Headers)
	if err != nil {
		return nil, fmt.Errorf("Data.%s.Headers: %w", f.TriggerName, err)
	}
	for k, vs := range headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}

	// Route parameters: matched from the URL, then overridden by the host's.
	if rest, ok := a.router.StripPrefix(u.EscapedPath()); ok && f.template != nil {
		if params, ok := f.template.Match(rest); ok {
			req.Params = params
		}
	}
	params, err := decodeMultiMap(hr.Params)
	if err != nil {
		return nil, fmt.Errorf("Data.%s.Params: %w", f.TriggerName, err)
	}
	for k, vs := range params {
		if len(vs) > 0 {
			req.Params[k] = vs[0]
		}
	}

	req.Body, err = decodeBody(hr.Body, req.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("Data.%s.Body: %w", f.TriggerName, err)
	}
	if int64(len(req.Body)) > a.maxBody {
		return nil, &http.MaxBytesError{Limit: a.maxBody}
	}
	return req, nil
}

// unwrapJSONString returns the content of raw when raw is a JSON string
// (older hosts sent some objects as JSON text inside a string), else raw.
func unwrapJSONString(raw json.RawMessage) json.RawMessage {
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return json.RawMessage(s)
	}
	return raw
}

// decodeMultiMap decodes an object whose values are strings, arrays of
// strings, other scalars (kept as JSON text) or null (dropped). The object
// itself may arrive as a JSON string containing it; null or absent is empty.
func decodeMultiMap(raw json.RawMessage) (map[string][]string, error) {
	raw = unwrapJSONString(raw)
	if len(raw) == 0 || string(raw) == "null" || strings.TrimSpace(string(raw)) == "" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		switch {
		case string(v) == "null":
		case len(v) > 0 && v[0] == '[':
			var items []json.RawMessage
			if err := json.Unmarshal(v, &items); err != nil {
				return nil, fmt.Errorf("%q: %w", k, err)
			}
			for _, it := range items {
				if string(it) != "null" {
					out[k] = append(out[k], scalarText(it))
				}
			}
		default:
			out[k] = []string{scalarText(v)}
		}
	}
	return out, nil
}

// scalarText returns a JSON string's value, or any other JSON value as text.
func scalarText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

// decodeBody decodes Data.req.Body: absent or null means no body; a string is
// the raw body, base64 for application/octet-stream and multipart/*; any
// other JSON value (parsed bodies of old hosts) is taken as its JSON text.
func decodeBody(raw json.RawMessage, contentType string) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '"' {
		return []byte(raw), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	if s == "" {
		return nil, nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/") {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%s body is not base64: %w", mt, err)
		}
		return b, nil
	}
	return []byte(s), nil
}

func (a *App) serveOtherInvocation(ctx context.Context, w http.ResponseWriter, f FunctionInfo, p invocationPayload, decodeErr error) {
	fail := func(status int, code, msg string) {
		a.log.ErrorContext(ctx, "invocation failed", "function", f.Name, "invocationId", InvocationID(ctx), "status", status, "err", msg)
		writeResponse(w, Error(status, code, msg))
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(decodeErr, &tooLarge):
		fail(http.StatusRequestEntityTooLarge, CodeRequestTooLarge, "the invocation payload is too large")
		return
	case decodeErr != nil:
		fail(http.StatusBadRequest, CodeInvalidInvocation, fmt.Sprintf("could not decode the invocation of %q: %v", f.Name, decodeErr))
		return
	}
	fn := a.invocationFunc(f.Name)
	if fn == nil {
		fail(http.StatusNotImplemented, CodeNotImplemented,
			fmt.Sprintf("function %q is declared in function.json but no Go code is bound to it", f.Name))
		return
	}
	inv := &Invocation{FunctionName: f.Name, InvocationID: InvocationID(ctx), Function: f, Data: p.Data, Metadata: p.Metadata}
	if inv.Metadata == nil {
		inv.Metadata = map[string]json.RawMessage{}
	}
	result, err := a.callInvocation(ctx, fn, inv)
	if err != nil {
		fail(http.StatusInternalServerError, CodeInternal, fmt.Sprintf("function %q failed: %v", f.Name, err))
		return
	}
	reply := invocationReply{Outputs: map[string]any{}, Logs: []string{}}
	if result != nil {
		for k, v := range result.Outputs {
			reply.Outputs[k] = v
		}
		reply.Logs = append(reply.Logs, result.Logs...)
		reply.ReturnValue = result.ReturnValue
	}
	resp := JSON(http.StatusOK, reply)
	if resp.StatusCode != http.StatusOK {
		fail(http.StatusInternalServerError, CodeInternal, fmt.Sprintf("function %q returned outputs that cannot be encoded as JSON", f.Name))
		return
	}
	writeResponse(w, resp)
}

func (a *App) callInvocation(ctx context.Context, fn InvocationFunc, inv *Invocation) (result *InvocationResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			a.log.ErrorContext(ctx, "function panicked", "function", inv.FunctionName, "invocationId", inv.InvocationID,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(ctx, inv)
}
