package durable

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// HTTPActivityName is the name of the built-in activity that performs the
// requests of CallHTTP, as Durable Functions records it in history. An app
// must register it (handler/funcapp does so; see package
// taskhub/durablehttp).
const HTTPActivityName = "BuiltIn::HttpActivity"

// DefaultHTTPPollInterval is how long CallHTTP waits between polls of a 202
// response that carries no usable Retry-After header, unless the request
// or the app (Registry.SetHTTPPollInterval) says otherwise. It is Durable
// Functions' defaultHttpAsyncRequestSleepTimeMillseconds.
const DefaultHTTPPollInterval = 30 * time.Second

// TokenSourceManagedIdentity is the TokenSource kind of a managed-identity
// token (Durable Functions' "AzureManagedIdentity").
const TokenSourceManagedIdentity = "AzureManagedIdentity"

// ErrInvalidHTTPRequest is matched (errors.Is) by the error of a CallHTTP
// whose request is not valid; the error says which part is wrong.
var ErrInvalidHTTPRequest = errors.New("durable: invalid HTTP request")

// HTTPRequest is a durable HTTP request made by CallHTTP.
type HTTPRequest struct {
	// Method is the HTTP method: GET (the default when empty), HEAD, POST,
	// PUT, PATCH, DELETE or OPTIONS, in any case.
	Method string
	// URL is the absolute http or https URL to call.
	URL string
	// Headers are sent with the request (and with every poll of a 202,
	// except x-functions-key).
	Headers HTTPHeaders
	// Body is the request content (UTF-8 text; empty sends none). Set a
	// Content-Type header for it; the default is text/plain.
	Body string
	// Timeout bounds the whole call, polls and retries included (0 = no
	// bound): when it passes, the task fails with an error matching
	// ErrTimeout. It also bounds each single request.
	Timeout time.Duration
	// Retry retries failed requests (network errors, and the status codes
	// it lists) with durable timers between attempts.
	Retry *HTTPRetryOptions
	// TokenSource, if set, makes the request carry
	// "Authorization: Bearer <token>" with a token acquired for it.
	TokenSource *TokenSource
	// DisablePolling returns a 202 response as it is instead of following
	// its Location (Durable Functions' asynchronousPatternEnabled = false).
	DisablePolling bool
	// PollInterval is the wait between polls when a 202 carries no
	// Retry-After (0 = the app's setting, by default
	// DefaultHTTPPollInterval).
	PollInterval time.Duration
}

// HTTPRetryOptions says how CallHTTP retries. Each request (the first one
// and each poll of a 202) is retried on its own according to RetryPolicy.
// A request fails, and is retried, when it could not be made or answered
// (a *TaskFailedError from the built-in activity), or when its response has
// a status code listed in StatusCodesToRetry; with an empty list, every
// status outside 200-299 counts as a failure (as in Durable Functions).
// When retrying stops on a status, the call fails with an *HTTPStatusError
// holding the last response.
type HTTPRetryOptions struct {
	RetryPolicy
	// StatusCodesToRetry lists the response status codes to retry.
	StatusCodesToRetry []int
}

// failsOn reports whether a response with status code counts as a failed
// attempt.
func (o *HTTPRetryOptions) failsOn(code int) bool {
	if len(o.StatusCodesToRetry) == 0 {
		return code < 200 || code > 299
	}
	for _, c := range o.StatusCodesToRetry {
		if c == code {
			return true
		}
	}
	return false
}

// TokenSource names a token that the built-in activity acquires and sends
// as "Authorization: Bearer <token>". On the wire it is Durable Functions'
// ManagedIdentityTokenSource ({"kind":"AzureManagedIdentity","resource":…}),
// plus our clientId.
type TokenSource struct {
	// Kind is TokenSourceManagedIdentity, the only kind there is.
	Kind string `json:"kind"`
	// Resource is the audience of the token, e.g.
	// "https://management.core.windows.net/" (the scope is Resource +
	// "/.default").
	Resource string `json:"resource"`
	// ClientID selects a user-assigned managed identity ("" = the
	// system-assigned one).
	ClientID string `json:"clientId,omitempty"`
}

// ManagedIdentityToken returns a token source for a token of the app's
// managed identity for resource (Durable Functions'
// ManagedIdentityTokenSource).
func ManagedIdentityToken(resource string) *TokenSource {
	return &TokenSource{Kind: TokenSourceManagedIdentity, Resource: resource}
}

// WithClientID returns a copy of t that uses the user-assigned managed
// identity with client ID id.
func (t *TokenSource) WithClientID(id string) *TokenSource {
	c := *t
	c.ClientID = id
	return &c
}

// HTTPHeaders holds HTTP header fields; names are matched
// case-insensitively by Get and Values. In JSON a field with one value is a
// string and one with several an array of strings, as Durable Functions
// writes them.
type HTTPHeaders map[string][]string

// Get returns the first value of the header name (case-insensitive), or "".
func (h HTTPHeaders) Get(name string) string {
	if v := h.Values(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns all values of the header name (case-insensitive): those
// of every entry whose name matches, in sorted name order.
func (h HTTPHeaders) Values(name string) []string {
	var out []string
	for _, k := range h.sortedNames() {
		if strings.EqualFold(k, name) {
			out = append(out, h[k]...)
		}
	}
	return out
}

func (h HTTPHeaders) sortedNames() []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// without returns a copy of h with the header name (case-insensitive)
// removed.
func (h HTTPHeaders) without(name string) HTTPHeaders {
	out := make(HTTPHeaders, len(h))
	for k, v := range h {
		if !strings.EqualFold(k, name) {
			out[k] = append([]string(nil), v...)
		}
	}
	return out
}

// MarshalJSON writes the fields in name order, one value as a string.
func (h HTTPHeaders) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range h.sortedNames() {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(k)
		b.Write(name)
		b.WriteByte(':')
		var val []byte
		if v := h[k]; len(v) == 1 {
			val, _ = json.Marshal(v[0])
		} else {
			if v == nil {
				v = []string{}
			}
			val, _ = json.Marshal(v)
		}
		b.Write(val)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// UnmarshalJSON reads fields whose values are strings or arrays of strings.
func (h *HTTPHeaders) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("HTTP headers: %w", err)
	}
	if raw == nil {
		*h = nil
		return nil
	}
	out := make(HTTPHeaders, len(raw))
	for k, v := range raw {
		var one string
		if err := json.Unmarshal(v, &one); err == nil {
			out[k] = []string{one}
			continue
		}
		var many []string
		if err := json.Unmarshal(v, &many); err != nil {
			return fmt.Errorf("HTTP header %q: want a string or an array of strings, got %s", k, v)
		}
		out[k] = many
	}
	*h = out
	return nil
}

// HTTPResponse is the response of a durable HTTP call. Its JSON is Durable
// Functions' DurableHttpResponse: {"statusCode","headers","content"}.
type HTTPResponse struct {
	StatusCode int         `json:"statusCode"`
	Headers    HTTPHeaders `json:"headers,omitempty"`
	// Body is the response content as text.
	Body string `json:"content"`
}

// Header returns the first value of the response header name
// (case-insensitive), or "".
func (r HTTPResponse) Header(name string) string { return r.Headers.Get(name) }

// HTTPActivityRequest is the input of the built-in activity
// (HTTPActivityName): one HTTP request, in the shape of Durable Functions'
// DurableHttpRequest. Mocks of the activity decode their input into it.
type HTTPActivityRequest struct {
	Method      string       `json:"method"`
	URI         string       `json:"uri"`
	Headers     HTTPHeaders  `json:"headers,omitempty"`
	Content     string       `json:"content,omitempty"`
	TokenSource *TokenSource `json:"tokenSource,omitempty"`
	// AsynchronousPatternEnabled tells whether the orchestrator follows a
	// 202 (informational for the activity).
	AsynchronousPatternEnabled bool `json:"asynchronousPatternEnabled"`
	// Timeout bounds the request, as a .NET TimeSpan ("00:01:30"); "" = no
	// bound of its own.
	Timeout string `json:"timeout,omitempty"`
}

// UnmarshalJSON also accepts the request wrapped in an array of one, as
// the Durable Functions extension records activity inputs.
func (r *HTTPActivityRequest) UnmarshalJSON(data []byte) error {
	type plain HTTPActivityRequest
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "[") {
		var list []plain
		if err := json.Unmarshal(data, &list); err != nil {
			return err
		}
		if len(list) != 1 {
			return fmt.Errorf("durable HTTP activity input: want one request, got an array of %d", len(list))
		}
		*r = HTTPActivityRequest(list[0])
		return nil
	}
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*r = HTTPActivityRequest(p)
	return nil
}

// TimeoutDuration returns the request's own timeout (0 = none).
func (r *HTTPActivityRequest) TimeoutDuration() (time.Duration, error) {
	if r.Timeout == "" {
		return 0, nil
	}
	d, err := parseTimeSpan(r.Timeout)
	if err != nil {
		return 0, invalidHTTP("timeout", "%q is not a TimeSpan such as 00:01:30", r.Timeout)
	}
	return d, nil
}

// httpMethods are the methods durable HTTP supports.
var httpMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

// Validate checks the request: a supported method (upper case), an absolute
// http(s) URL, header names that are tokens and values without control
// characters, UTF-8 content and a well-formed token source and timeout. Its
// error matches ErrInvalidHTTPRequest and names the part that is wrong.
func (r *HTTPActivityRequest) Validate() error {
	if !httpMethods[r.Method] {
		return invalidHTTP("method", "%q is not supported (use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)", r.Method)
	}
	if err := validateURL(r.URI); err != nil {
		return err
	}
	for _, k := range r.Headers.sortedNames() {
		if !validHeaderName(k) {
			return invalidHTTP("header name", "%q is not a valid HTTP header name", k)
		}
		for _, v := range r.Headers[k] {
			if i := strings.IndexFunc(v, func(c rune) bool { return (c < 0x20 && c != '\t') || c == 0x7f }); i >= 0 {
				return invalidHTTP("header "+k, "the value holds control character %U at byte %d (newlines are not allowed in header values)", v[i], i)
			}
			if !utf8.ValidString(v) {
				return invalidHTTP("header "+k, "the value is not valid UTF-8")
			}
		}
	}
	if !utf8.ValidString(r.Content) {
		i := 0
		for i < len(r.Content) {
			c, n := utf8.DecodeRuneInString(r.Content[i:])
			if c == utf8.RuneError && n == 1 {
				break
			}
			i += n
		}
		return invalidHTTP("body", "not UTF-8 text (invalid byte 0x%02x at offset %d); durable HTTP carries text bodies only", r.Content[i], i)
	}
	if ts := r.TokenSource; ts != nil {
		if ts.Kind != TokenSourceManagedIdentity {
			return invalidHTTP("token source", "kind %q is not supported (want %q)", ts.Kind, TokenSourceManagedIdentity)
		}
		if strings.TrimSpace(ts.Resource) == "" {
			return invalidHTTP("token source", "the resource is empty")
		}
	}
	if _, err := r.TimeoutDuration(); err != nil {
		return err
	}
	return nil
}

func validateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return invalidHTTP("URL", "%q does not parse: %v", raw, err)
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return invalidHTTP("URL", "%q is not an absolute http or https URL", raw)
	}
	if u.Host == "" {
		return invalidHTTP("URL", "%q has no host", raw)
	}
	return nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// HTTPRequestError is the error of an invalid durable HTTP request; it
// matches ErrInvalidHTTPRequest.
type HTTPRequestError struct {
	// Part is the part of the request that is wrong ("URL", "method", ...).
	Part string
	// Reason says what is wrong with it.
	Reason string
}

func invalidHTTP(part, format string, args ...any) error {
	return &HTTPRequestError{Part: part, Reason: fmt.Sprintf(format, args...)}
}

// Error implements error.
func (e *HTTPRequestError) Error() string {
	return fmt.Sprintf("durable HTTP request: %s: %s", e.Part, e.Reason)
}

// Is matches ErrInvalidHTTPRequest.
func (e *HTTPRequestError) Is(target error) bool { return target == ErrInvalidHTTPRequest }

// ErrorType implements the ErrorType convention.
func (e *HTTPRequestError) ErrorType() string { return "HTTPRequestError" }

// HTTPStatusError is the error of a durable HTTP call whose retries ended
// on a response with a status that HTTPRetryOptions counts as a failure.
type HTTPStatusError struct {
	Method   string
	URL      string
	Response HTTPResponse
}

// Error implements error.
func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("durable HTTP %s %s: status %d, and retrying stopped", e.Method, e.URL, e.Response.StatusCode)
}

// ErrorType implements the ErrorType convention.
func (e *HTTPStatusError) ErrorType() string { return "HTTPStatusError" }

// httpTimeoutError is the error of a call whose Timeout passed.
type httpTimeoutError struct {
	method, url string
	timeout     time.Duration
}

func (e *httpTimeoutError) Error() string {
	return fmt.Sprintf("%v: durable HTTP %s %s did not finish within %v", ErrTimeout, e.method, e.url, e.timeout)
}

func (e *httpTimeoutError) Is(target error) bool { return target == ErrTimeout }

func (e *httpTimeoutError) ErrorType() string { return "TimeoutError" }

// activityRequest validates r and returns the built-in activity's input
// for its first request.
func (r *HTTPRequest) activityRequest() (HTTPActivityRequest, error) {
	method := strings.ToUpper(strings.TrimSpace(r.Method))
	if method == "" {
		method = "GET"
	}
	a := HTTPActivityRequest{
		Method: method, URI: r.URL, Headers: r.Headers, Content: r.Body,
		AsynchronousPatternEnabled: !r.DisablePolling,
	}
	if ts := r.TokenSource; ts != nil {
		c := *ts
		if c.Kind == "" {
			c.Kind = TokenSourceManagedIdentity
		}
		a.TokenSource = &c
	}
	switch {
	case r.Timeout < 0:
		return a, invalidHTTP("timeout", "%v is negative", r.Timeout)
	case r.Timeout > 0:
		a.Timeout = formatTimeSpan(r.Timeout)
	}
	if r.PollInterval < 0 {
		return a, invalidHTTP("poll interval", "%v is negative", r.PollInterval)
	}
	if r.Retry != nil {
		if err := r.Retry.validate(); err != nil {
			return a, invalidHTTP("retry", "%v", err)
		}
	}
	return a, a.Validate()
}

// CallHTTP makes a durable HTTP request through the built-in activity
// HTTPActivityName and returns a task for its response. With the Durable
// Functions semantics:
//
//   - A response 202 with a Location header is followed (unless
//     DisablePolling): after a durable timer for its Retry-After (seconds or
//     an HTTP date; without one, PollInterval), the Location URL (resolved
//     against the request URL) is fetched with GET and the original headers
//     minus x-functions-key, until a response is not 202. A 202 without
//     Location is the result as it is.
//   - Retry retries each request on failures and listed status codes, with
//     durable timers between attempts.
//   - Timeout bounds the whole call through a durable timer: the task then
//     fails with an error matching ErrTimeout (a request still running is
//     abandoned and its result ignored).
//   - An invalid request fails the task at once with an error matching
//     ErrInvalidHTTPRequest; nothing is scheduled.
//
// Any status other than a followed 202 is a successful result unless Retry
// counts it as a failure: check StatusCode.
func CallHTTP(ctx *Context, req HTTPRequest) *Task[HTTPResponse] {
	method := strings.ToUpper(strings.TrimSpace(req.Method))
	user := &task{id: -1, kind: "http", name: HTTPActivityName, resultOf: fmt.Sprintf("durable HTTP %s %s", method, req.URL)}
	first, err := req.activityRequest()
	if err != nil {
		ctx.ex.completeTask(user, "", err)
		return &Task[HTTPResponse]{ctx: ctx, t: user}
	}
	c := &httpCall{ctx: ctx, user: user, retry: req.Retry, poll: req.PollInterval}
	if c.poll == 0 {
		c.poll = ctx.ex.httpPollInterval
	}
	if c.poll == 0 {
		c.poll = DefaultHTTPPollInterval
	}
	c.send(first)
	if req.Timeout > 0 && !user.done {
		deadline := ctx.CreateTimer(ctx.currentTime.Add(req.Timeout))
		user.onDone = append(user.onDone, deadline.Cancel)
		deadline.t.onDone = append(deadline.t.onDone, func() {
			if deadline.t.err != nil || user.done {
				return
			}
			if c.waiting != nil {
				c.waiting.Cancel()
			}
			ctx.ex.completeTask(user, "", &httpTimeoutError{method: first.Method, url: first.URI, timeout: req.Timeout})
		})
	}
	return &Task[HTTPResponse]{ctx: ctx, t: user}
}

// httpCall is the state of one CallHTTP: the requests it made follow one
// another through task hooks, which run identically on replay.
type httpCall struct {
	ctx     *Context
	user    *task
	retry   *HTTPRetryOptions
	poll    time.Duration
	waiting *Timer // the retry or poll timer being waited for, if any
}

// send makes one request (a first request or a poll), with its own retries.
func (c *httpCall) send(req HTTPActivityRequest) {
	in, err := encodeJSON(req)
	if err != nil {
		c.ctx.ex.completeTask(c.user, "", err)
		return
	}
	first := c.ctx.currentTime
	failures := 0
	var attempt func()
	attempt = func() {
		ev := history.NewEvent(history.TaskScheduled, c.ctx.currentTime)
		ev.Name, ev.Input = HTTPActivityName, in
		a := c.ctx.ex.schedule("activity", HTTPActivityName, ev)
		a.onDone = append(a.onDone, func() {
			if c.user.done {
				return
			}
			var failure error
			var resp HTTPResponse
			if a.err != nil {
				failure = a.err
			} else if err := decodeJSON(a.result, &resp); err != nil {
				c.ctx.ex.completeTask(c.user, "", &ResultError{Of: c.user.resultOf, Type: "durable.HTTPResponse", Err: err})
				return
			} else if c.retry != nil && c.retry.failsOn(resp.StatusCode) {
				failure = &HTTPStatusError{Method: req.Method, URL: req.URI, Response: resp}
			}
			if failure == nil {
				c.received(req, resp, a.result)
				return
			}
			failures++
			if c.retry == nil {
				c.fail(failure)
				return
			}
			if retry, final := shouldRetry(&c.retry.RetryPolicy, failure, failures, first, c.ctx.currentTime); !retry {
				c.fail(final)
				return
			}
			c.wait(c.ctx.currentTime.Add(c.retry.delay(failures)), attempt)
		})
	}
	attempt()
}

// received handles a response that is not a failure: it follows a 202 or
// completes the call.
func (c *httpCall) received(req HTTPActivityRequest, resp HTTPResponse, raw string) {
	loc := resp.Header("Location")
	if resp.StatusCode != 202 || !req.AsynchronousPatternEnabled || loc == "" {
		c.ctx.ex.completeTask(c.user, raw, nil)
		return
	}
	target, err := resolveLocation(req.URI, loc)
	if err != nil {
		c.fail(err)
		return
	}
	poll := HTTPActivityRequest{
		Method: "GET", URI: target, Headers: req.Headers.without("x-functions-key"),
		TokenSource: req.TokenSource, AsynchronousPatternEnabled: true, Timeout: req.Timeout,
	}
	if len(poll.Headers) == 0 {
		poll.Headers = nil
	}
	c.wait(retryAfter(resp.Headers, c.ctx.currentTime, c.poll), func() { c.send(poll) })
}

// wait runs next when a durable timer at fireAt fires (unless the call
// has finished meanwhile).
func (c *httpCall) wait(fireAt time.Time, next func()) {
	timer := c.ctx.CreateTimer(fireAt)
	c.waiting = timer
	timer.t.onDone = append(timer.t.onDone, func() {
		if timer.t.err != nil || c.user.done {
			return
		}
		c.waiting = nil
		next()
	})
}

// fail ends the call with err, explaining a missing built-in activity.
func (c *httpCall) fail(err error) {
	var tf *TaskFailedError
	if errors.As(err, &tf) && tf.Failure.ErrorType == "NotRegisteredError" {
		err = fmt.Errorf("durable HTTP needs the built-in activity %q, which this app does not register "+
			"(handler/funcapp registers it; elsewhere register durablehttp.Activity): %w", HTTPActivityName, err)
	}
	c.ctx.ex.completeTask(c.user, "", err)
}

// resolveLocation resolves a 202's Location header against the URL that
// answered it.
func resolveLocation(base, loc string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", invalidHTTP("Location", "the request URL %q does not parse: %v", base, err)
	}
	l, err := url.Parse(strings.TrimSpace(loc))
	if err != nil {
		return "", invalidHTTP("Location", "the 202 response's Location header %q is not a URL: %v", loc, err)
	}
	target := b.ResolveReference(l).String()
	if err := validateURL(target); err != nil {
		return "", invalidHTTP("Location", "the 202 response's Location header %q does not lead to an http or https URL", loc)
	}
	return target, nil
}

// httpDateLayouts are the HTTP-date forms of RFC 9110 (IMF-fixdate first).
var httpDateLayouts = []string{"Mon, 02 Jan 2006 15:04:05 GMT", "Monday, 02-Jan-06 15:04:05 GMT", "Mon Jan _2 15:04:05 2006"}

// retryAfter returns when to poll again after a 202 with headers h: now
// plus Retry-After seconds, the Retry-After date (not before now), or now
// plus def when there is no usable Retry-After.
func retryAfter(h HTTPHeaders, now time.Time, def time.Duration) time.Time {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return now.Add(def)
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return now.Add(time.Duration(n) * time.Second)
	}
	for _, layout := range httpDateLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			if t.Before(now) {
				return now
			}
			return t
		}
	}
	return now.Add(def)
}

// formatTimeSpan writes d as a .NET TimeSpan: [d.]hh:mm:ss[.fffffff].
func formatTimeSpan(d time.Duration) string {
	ticks := int64(d / 100)
	sign := ""
	if ticks < 0 {
		sign, ticks = "-", -ticks
	}
	const perSecond = int64(time.Second / 100)
	secs := ticks / perSecond
	frac := ticks % perSecond
	days, secs := secs/86400, secs%86400
	s := fmt.Sprintf("%s%02d:%02d:%02d", sign, secs/3600, secs/60%60, secs%60)
	if days > 0 {
		s = fmt.Sprintf("%s%d.%02d:%02d:%02d", sign, days, secs/3600, secs/60%60, secs%60)
	}
	if frac > 0 {
		s += fmt.Sprintf(".%07d", frac)
	}
	return s
}

// parseTimeSpan reads a .NET TimeSpan written as [-][d.]hh:mm:ss[.fffffff].
func parseTimeSpan(s string) (time.Duration, error) {
	bad := fmt.Errorf("durable: %q is not a TimeSpan", s)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, bad
	}
	var days int64
	if d, h, ok := strings.Cut(parts[0], "."); ok {
		n, err := strconv.ParseInt(d, 10, 32)
		if err != nil || n < 0 {
			return 0, bad
		}
		days, parts[0] = n, h
	}
	secPart, fracPart, hasFrac := strings.Cut(parts[2], ".")
	var vals [3]int64
	for i, p := range []string{parts[0], parts[1], secPart} {
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < 0 || (i > 0 && n > 59) || (i == 0 && n > 23) {
			return 0, bad
		}
		vals[i] = n
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(vals[0])*time.Hour + time.Duration(vals[1])*time.Minute + time.Duration(vals[2])*time.Second
	if hasFrac {
		if fracPart == "" || len(fracPart) > 7 {
			return 0, bad
		}
		n, err := strconv.ParseInt((fracPart + "0000000")[:7], 10, 64)
		if err != nil || n < 0 {
			return 0, bad
		}
		d += time.Duration(n) * 100
	}
	if neg {
		d = -d
	}
	return d, nil
}
