package durable

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

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
