package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// Request is an HTTP request as a function sees it, whichever way it arrived
// (Functions host invocation or standalone server).
type Request struct {
	// Method is the HTTP method in upper case.
	Method string
	// URL is the absolute public URL the caller used, e.g.
	// http://localhost:7071/api/orchestrators/Orchestrator?code=x
	// When the request named no host (an HTTP/1.0 request without a Host
	// header), URL.Host is a host the server knows instead: in standalone
	// mode the local address the connection reached; under the Functions
	// host $WEBSITE_HOSTNAME (the host's public name), else for a forwarded
	// request the local address. Under the host's default invocation
	// protocol URL is the host's rendering of the path, which it has
	// already decoded once (see EscapedPath).
	URL *url.URL
	// EscapedPath is the URL path with its percent-escapes exactly as they
	// reached the handler, when the handler received the HTTP request itself
	// (standalone mode, or a request the Functions host forwarded). It is ""
	// for a request the host delivered as an invocation: the host has
	// already decoded the path once (leaving only %2F escaped), and Params
	// hold its values, which must not be decoded again.
	EscapedPath string
	// Query holds the query parameters (never nil).
	Query url.Values
	// Header holds the request headers (never nil); it includes "Host" in
	// both modes so that functions see the same headers either way.
	Header http.Header
	// Params holds the route parameters, e.g. {"functionName":"Orchestrator"},
	// catch-all parameters included (never nil). Optional parameters absent
	// from the URL are absent from the map.
	Params map[string]string
	// Body is the raw request body, nil when absent or empty.
	Body []byte
}

// Response is what an HTTP function returns. A nil *Response means 200 with
// an empty body, as when a Functions host function sets no response.
type Response struct {
	// StatusCode is the HTTP status; 0 means 200.
	StatusCode int
	// Header holds response headers. Under the Functions host only single
	// values can be carried: the first value of each key is used.
	// When Content-Type is absent and Body is not empty, both modes send
	// "text/plain; charset=utf-8", as the host does.
	Header http.Header
	// Body is the response body. Under the Functions host it travels as a
	// JSON string, so it must be valid UTF-8 there (invalid bytes would be
	// replaced; the handler logs a warning when that happens).
	Body []byte
}

// HTTPFunc is the Go code behind one httpTrigger function.
type HTTPFunc func(ctx context.Context, req *Request) *Response

// Error codes used in the JSON error bodies the handler itself produces.
const (
	// CodeNotFound: no function route matches the path (standalone) or the
	// host invoked a function this handler does not know.
	CodeNotFound = "NotFound"
	// CodeMethodNotAllowed: a route matched but not for this method.
	CodeMethodNotAllowed = "MethodNotAllowed"
	// CodeRequestTooLarge: the request body exceeds Options.MaxRequestBodyBytes.
	CodeRequestTooLarge = "RequestTooLarge"
	// CodeNotImplemented: function.json declares the function but no Go code
	// is bound to it.
	CodeNotImplemented = "NotImplemented"
	// CodeInternal: the function panicked or its response could not be encoded.
	CodeInternal = "InternalError"
	// CodeInvalidInvocation: the host's invocation payload could not be decoded.
	CodeInvalidInvocation = "InvalidInvocation"
	// CodeUnauthorized: the function key is missing or wrong (standalone mode).
	CodeUnauthorized = "Unauthorized"
)

// ErrorBody is the JSON shape of every error response the handler produces:
//
//	{"error": {"code": "NotFound", "message": "no function route matches GET /api/x"}}
type ErrorBody struct {
	// Error holds the code and message.
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inner object of ErrorBody.
type ErrorDetail struct {
	// Code is a stable, machine-readable identifier such as "NotFound".
	Code string `json:"code"`
	// Message is a human-readable explanation.
	Message string `json:"message"`
}

// contentTypeJSON is the Content-Type of JSON responses.
const contentTypeJSON = "application/json; charset=utf-8"

// JSON builds a Response with v encoded as JSON (HTML characters not
// escaped) and Content-Type application/json; charset=utf-8. If v cannot be
// encoded the result is a 500 InternalError response naming the problem.
func JSON(status int, v any) *Response {
	body, err := marshalJSON(v)
	if err != nil {
		return Error(http.StatusInternalServerError, CodeInternal, "could not encode the response as JSON: "+err.Error())
	}
	return &Response{StatusCode: status, Header: http.Header{"Content-Type": {contentTypeJSON}}, Body: body}
}

// Error builds a JSON error response with the ErrorBody shape
// {"error":{"code":code,"message":message}}.
func Error(status int, code, message string) *Response {
	body, _ := marshalJSON(ErrorBody{Error: ErrorDetail{Code: code, Message: message}}) // cannot fail
	return &Response{StatusCode: status, Header: http.Header{"Content-Type": {contentTypeJSON}}, Body: body}
}

func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// normalized returns the response as it is sent: status 200 for a nil
// response or a zero status, and the host's default Content-Type.
func (r *Response) normalized() *Response {
	out := &Response{StatusCode: http.StatusOK, Header: http.Header{}}
	if r != nil {
		if r.StatusCode != 0 {
			out.StatusCode = r.StatusCode
		}
		if r.Header != nil {
			out.Header = r.Header.Clone()
		}
		out.Body = r.Body
	}
	if len(out.Body) > 0 && out.Header.Get("Content-Type") == "" {
		out.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	return out
}

type invocationIDKey struct{}

// InvocationID returns the Functions host invocation ID of the request being
// served (the X-Azure-Functions-InvocationId header), or "" in standalone mode.
func InvocationID(ctx context.Context) string {
	id, _ := ctx.Value(invocationIDKey{}).(string)
	return id
}
