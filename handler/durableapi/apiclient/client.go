// Package apiclient is a typed Go client for the Durable Functions HTTP
// management API that a Durable Functions for Go app serves under
// /api/durabletask (package durableapi): start instances, query and list
// them, raise events, terminate, suspend, resume, rewind, restart and
// purge.
//
//	c, err := apiclient.New("http://127.0.0.1:7071/api/durabletask")
//	links, err := c.Start(ctx, "Orchestrator", map[string]int{"n": 3})
//	st, err := c.WaitForCompletion(ctx, links.ID, time.Second)
//	var out []string
//	err = st.DecodeOutput(&out)
//
// The typed layer names an orchestrator with its input and output types
// and gives the output, failure and custom status as Go values:
//
//	hello := apiclient.Orchestrator[map[string]int, []string]{Name: "Orchestrator"}
//	inst, err := apiclient.Start(ctx, c, hello, map[string]int{"n": 3})
//	out, err := inst.Wait(ctx) // []string, or a *FailedError, *TerminatedError, *DecodeError
//
// Every error answer of the API is an [*APIError]; test for the common
// ones with errors.Is and [ErrNotFound], [ErrConflict], [ErrGone],
// [ErrBadRequest] and [ErrUnauthorized]. The package depends on the
// standard library only.
package apiclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one management API. It is safe for concurrent use.
type Client struct {
	base  *url.URL   // scheme, host and path of the API, without a trailing slash
	query url.Values // parameters sent with every request (base URL query, taskHub, connection)
	hc    *http.Client
	key   string

	// after is time.After; tests replace it to observe the waits.
	after func(time.Duration) <-chan time.Time
}

// Option configures a [Client].
type Option func(*Client)

// WithHTTPClient sets the HTTP client the requests go through (default
// http.DefaultClient). Its Timeout, if any, must allow for the wait of
// [Client.StartAndWait].
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithKey sends a function key with every request, in the x-functions-key
// header (for an app that requires DURABLE_FUNCTION_KEY, or behind the
// Functions host).
func WithKey(key string) Option { return func(c *Client) { c.key = key } }

// WithTaskHub adds taskHub=name to every request, as the management URLs
// of Durable Functions do.
func WithTaskHub(name string) Option { return func(c *Client) { c.query.Set("taskHub", name) } }

// WithConnection adds connection=name (the storage connection setting) to
// every request.
func WithConnection(name string) Option {
	return func(c *Client) { c.query.Set("connection", name) }
}

// New returns a client for the management API at baseURL, e.g.
// "http://127.0.0.1:7071/api/durabletask". Query parameters of baseURL
// (such as code=<key>) are sent with every request.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("apiclient: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("apiclient: base URL %q: want an absolute http or https URL", baseURL)
	}
	if u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("apiclient: base URL %q: must not carry a fragment or user info", baseURL)
	}
	c := &Client{
		base:  &url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimRight(u.Path, "/")},
		query: u.Query(),
		hc:    http.DefaultClient,
		after: time.After,
	}
	c.base.RawPath = strings.TrimRight(u.EscapedPath(), "/")
	if c.base.RawPath == c.base.Path {
		c.base.RawPath = ""
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL returns the API's base URL as given to New, without query.
func (c *Client) BaseURL() string { return c.base.String() }

// endpoint builds the URL of the API path made of segs (each escaped as
// one path segment) with the client's query parameters and q.
func (c *Client) endpoint(q url.Values, segs ...string) string {
	u := *c.base
	p := u.EscapedPath()
	for _, s := range segs {
		p += "/" + url.PathEscape(s)
	}
	u.Path, _ = url.PathUnescape(p) // p was built from valid escapes
	u.RawPath = p
	all := url.Values{}
	for k, v := range c.query {
		all[k] = append([]string(nil), v...)
	}
	for k, v := range q {
		all[k] = append(all[k], v...)
	}
	u.RawQuery = all.Encode()
	return u.String()
}

// response is a read HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// send performs one request; body, if not nil, is sent as JSON.
func (c *Client) send(ctx context.Context, method, rawURL string, body []byte, header http.Header) (*response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, fmt.Errorf("apiclient: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("x-functions-key", c.key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("apiclient: %s %s: %w", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("apiclient: %s %s: reading the response: %w", method, rawURL, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// call performs a request and turns a status outside want into an
// *APIError.
func (c *Client) call(ctx context.Context, method, rawURL string, body []byte, header http.Header, want ...int) (*response, error) {
	r, err := c.send(ctx, method, rawURL, body, header)
	if err != nil {
		return nil, err
	}
	for _, w := range want {
		if r.status == w {
			return r, nil
		}
	}
	return nil, newAPIError(method, rawURL, r.status, r.body)
}

func decodeBody[T any](method, rawURL string, r *response) (T, error) {
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		return v, fmt.Errorf("apiclient: %s %s: %d response is not the expected JSON: %w", method, rawURL, r.status, err)
	}
	return v, nil
}

// encodeInput renders an input or event payload; nil means no body.
func encodeInput(what string, v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	if raw, ok := v.(json.RawMessage); ok && raw == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("apiclient: encode %s: %w", what, err)
	}
	return b, nil
}

// StartOption configures [Client.Start] and [Client.StartAndWait].
type StartOption func(*startOptions)

type startOptions struct{ instanceID, version string }

// query is the query of a start request.
func (o startOptions) query() url.Values {
	if o.version == "" {
		return nil
	}
	return url.Values{"version": {o.version}}
}

// WithInstanceID starts the instance under id instead of a generated one.
// Starting an ID whose instance is still running fails with ErrConflict;
// a finished instance with that ID is replaced.
func WithInstanceID(id string) StartOption { return func(o *startOptions) { o.instanceID = id } }

// WithVersion starts the instance with orchestration version v instead of
// the app's default version.
func WithVersion(v string) StartOption { return func(o *startOptions) { o.version = v } }

func startPath(name string, o startOptions) []string {
	if o.instanceID != "" {
		return []string{"orchestrators", name, o.instanceID}
	}
	return []string{"orchestrators", name}
}

// Start starts a new instance of the orchestrator name with input (any
// value, sent as JSON; nil for none) and returns its management URLs; the
// instance ID is their ID.
func (c *Client) Start(ctx context.Context, name string, input any, opts ...StartOption) (*ManagementURLs, error) {
	var o startOptions
	for _, opt := range opts {
		opt(&o)
	}
	body, err := encodeInput("input", input)
	if err != nil {
		return nil, err
	}
	u := c.endpoint(o.query(), startPath(name, o)...)
	r, err := c.call(ctx, http.MethodPost, u, bodyOrEmpty(body), nil, http.StatusAccepted, http.StatusCreated, http.StatusOK)
	if err != nil {
		return nil, err
	}
	links, err := decodeBody[ManagementURLs](http.MethodPost, u, r)
	if err != nil {
		return nil, err
	}
	if links.ID == "" {
		return nil, fmt.Errorf("apiclient: POST %s: the response carries no instance id: %s", u, r.body)
	}
	return &links, nil
}

// bodyOrEmpty sends an empty body (input null) rather than none, so that
// the request has a Content-Length.
func bodyOrEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// StartAndWait starts an instance like [Client.Start] and lets the server
// wait up to timeout (polling every pollingInterval) for it to finish;
// both must be positive (the server accepts up to an hour). Without
// [WithInstanceID] the client picks a random 32-hex-digit ID, so that it
// knows the instance even when the server answers with the bare output.
//
// It returns the final status when the instance finished in time — also
// when it failed or was terminated: check RuntimeStatus. When the instance
// is still running it returns its current status together with
// ErrStillRunning.
func (c *Client) StartAndWait(ctx context.Context, name string, input any, timeout, pollingInterval time.Duration, opts ...StartOption) (*Status, error) {
	if timeout <= 0 || pollingInterval <= 0 {
		return nil, fmt.Errorf("apiclient: StartAndWait needs a positive timeout and polling interval, got %v and %v", timeout, pollingInterval)
	}
	o := startOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.instanceID == "" {
		o.instanceID = newInstanceID()
	}
	body, err := encodeInput("input", input)
	if err != nil {
		return nil, err
	}
	q := url.Values{"timeout": {seconds(timeout)}, "pollingInterval": {seconds(pollingInterval)}}
	if o.version != "" {
		q.Set("version", o.version)
	}
	u := c.endpoint(q, startPath(name, o)...)
	r, err := c.send(ctx, http.MethodPost, u, bodyOrEmpty(body), nil)
	if err != nil {
		return nil, err
	}
	switch r.status {
	case http.StatusAccepted, http.StatusOK:
		// 202: still running; 200: the output (Completed) or the status
		// (Terminated, Canceled). Either way the status endpoint has the
		// whole story.
	case http.StatusInternalServerError:
		// A Failed instance is a 500 with its status; anything else is an error.
		var st Status
		if json.Unmarshal(r.body, &st) != nil || st.InstanceID == "" || st.RuntimeStatus == "" {
			return nil, newAPIError(http.MethodPost, u, r.status, r.body)
		}
	default:
		return nil, newAPIError(http.MethodPost, u, r.status, r.body)
	}
	st, err := c.Status(ctx, o.instanceID)
	if err != nil {
		return nil, err
	}
	if !st.RuntimeStatus.IsTerminal() {
		return st, ErrStillRunning
	}
	return st, nil
}

// newInstanceID returns 32 random lowercase hex digits, the format of the
// IDs the server generates.
func newInstanceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

// seconds renders d in seconds for the timeout query parameters.
func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

// StatusOption configures [Client.Status].
type StatusOption func(url.Values)

// ShowHistory includes the instance's history (Status.History).
func ShowHistory() StatusOption { return func(q url.Values) { q.Set("showHistory", "true") } }

// ShowHistoryOutput includes the history with the results of its tasks
// (implies ShowHistory).
func ShowHistoryOutput() StatusOption {
	return func(q url.Values) {
		q.Set("showHistory", "true")
		q.Set("showHistoryOutput", "true")
	}
}

// ShowScheduled includes the history with its scheduling events
// (showScheduled=true, an extension of ours; implies ShowHistory), so that
// calls still under way show: see HistoryEvent.EventID.
func ShowScheduled() StatusOption {
	return func(q url.Values) {
		q.Set("showHistory", "true")
		q.Set("showScheduled", "true")
	}
}

// ShowInput(false) leaves the input out of the status (and of the
// history); the default is to include it.
func ShowInput(show bool) StatusOption {
	return func(q url.Values) { q.Set("showInput", strconv.FormatBool(show)) }
}

// Status returns the status of instance id; ErrNotFound if there is none.
func (c *Client) Status(ctx context.Context, id string, opts ...StatusOption) (*Status, error) {
	st, _, err := c.status(ctx, id, opts...)
	return st, err
}

// status also returns the server's Retry-After advice (0 if none).
func (c *Client) status(ctx context.Context, id string, opts ...StatusOption) (*Status, time.Duration, error) {
	q := url.Values{}
	for _, o := range opts {
		o(q)
	}
	u := c.endpoint(q, "instances", id)
	// 200: finished; 202: still running; 500 only if asked for failures.
	r, err := c.call(ctx, http.MethodGet, u, nil, nil, http.StatusOK, http.StatusAccepted)
	if err != nil {
		return nil, 0, err
	}
	st, err := decodeBody[Status](http.MethodGet, u, r)
	if err != nil {
		return nil, 0, err
	}
	var retry time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(r.header.Get("Retry-After"))); err == nil && n > 0 {
		retry = time.Duration(n) * time.Second
	}
	return &st, retry, nil
}

// DefaultPollInterval is how often [Client.WaitForCompletion] polls when
// given no interval and the server advises no Retry-After.
const DefaultPollInterval = time.Second

// WaitForCompletion polls the status of instance id until it is
// Completed, Failed, Canceled or Terminated, and returns that status. It
// polls every pollInterval; with pollInterval 0 it follows the server's
// Retry-After advice (5 s for a running instance), or DefaultPollInterval
// without one. When ctx ends first it returns the last status seen (nil if
// none) with ctx's error; an API error (such as ErrNotFound) ends the wait.
func (c *Client) WaitForCompletion(ctx context.Context, id string, pollInterval time.Duration) (*Status, error) {
	var last *Status
	for {
		st, retry, err := c.status(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, err
		}
		last = st
		if st.RuntimeStatus.IsTerminal() {
			return st, nil
		}
		wait := pollInterval
		if wait <= 0 {
			wait = retry
		}
		if wait <= 0 {
			wait = DefaultPollInterval
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-c.after(wait):
		}
	}
}

// filterQuery renders f as the query of list and purge requests.
func filterQuery(f Filter, listing bool) url.Values {
	q := url.Values{}
	if !f.CreatedFrom.IsZero() {
		q.Set("createdTimeFrom", f.CreatedFrom.UTC().Format(time.RFC3339Nano))
	}
	if !f.CreatedTo.IsZero() {
		q.Set("createdTimeTo", f.CreatedTo.UTC().Format(time.RFC3339Nano))
	}
	if len(f.RuntimeStatus) > 0 {
		names := make([]string, len(f.RuntimeStatus))
		for i, s := range f.RuntimeStatus {
			names[i] = string(s)
		}
		q.Set("runtimeStatus", strings.Join(names, ","))
	}
	if f.InstanceIDPrefix != "" {
		q.Set("instanceIdPrefix", f.InstanceIDPrefix)
	}
	if listing {
		if f.PageSize > 0 {
			q.Set("top", strconv.Itoa(f.PageSize))
		}
		if f.HideInput {
			q.Set("showInput", "false")
		}
	}
	return q
}

// continuationHeader carries the paging token of list requests both ways.
const continuationHeader = "x-ms-continuation-token"

// ListPage returns one page of the instances matching f, starting at
// continuation ("" for the first page), and the token of the next page
// ("" after the last). A page may be shorter than f.PageSize, even empty,
// with more to come: only an empty next token ends the listing.
func (c *Client) ListPage(ctx context.Context, f Filter, continuation string) ([]*Status, string, error) {
	return getPage[*Status](ctx, c, c.endpoint(filterQuery(f, true), "instances"), continuation)
}

// getPage GETs one page of a listing at u, sending continuation in
// x-ms-continuation-token, and returns its items and the next page's
// token ("" after the last).
func getPage[T any](ctx context.Context, c *Client, u, continuation string) ([]T, string, error) {
	var h http.Header
	if continuation != "" {
		h = http.Header{}
		h.Set(continuationHeader, continuation)
	}
	r, err := c.call(ctx, http.MethodGet, u, nil, h, http.StatusOK)
	if err != nil {
		return nil, "", err
	}
	page, err := decodeBody[[]T](http.MethodGet, u, r)
	if err != nil {
		return nil, "", err
	}
	return page, r.header.Get(continuationHeader), nil
}

// List iterates over all instances matching f, fetching page after page
// (following x-ms-continuation-token) as the loop goes on:
//
//	for st, err := range c.List(ctx, apiclient.Filter{RuntimeStatus: []apiclient.RuntimeStatus{apiclient.StatusRunning}}) {
//		if err != nil { return err }
//		fmt.Println(st.InstanceID)
//	}
//
// An error is yielded once, with a nil status, and ends the iteration.
// Breaking out of the loop stops fetching.
func (c *Client) List(ctx context.Context, f Filter) iter.Seq2[*Status, error] {
	return func(yield func(*Status, error) bool) {
		token := ""
		for {
			page, next, err := c.ListPage(ctx, f, token)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, st := range page {
				if !yield(st, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if next == token {
				yield(nil, fmt.Errorf("apiclient: the server returned continuation token %q again; stopping to avoid an endless listing", next))
				return
			}
			token = next
		}
	}
}

// RaiseEvent sends the event name with data (any value, sent as JSON; nil
// for null) to instance id. ErrNotFound if there is no such instance,
// ErrGone if it has finished. A suspended instance queues the event until
// it resumes.
func (c *Client) RaiseEvent(ctx context.Context, id, name string, data any) error {
	body, err := encodeInput("event data", data)
	if err != nil {
		return err
	}
	if body == nil {
		body = []byte("null")
	}
	_, err = c.call(ctx, http.MethodPost, c.endpoint(nil, "instances", id, "raiseEvent", name), body, nil, http.StatusAccepted, http.StatusOK)
	return err
}

// operation posts one of terminate, suspend, resume and rewind.
func (c *Client) operation(ctx context.Context, id, op, reason string) error {
	q := url.Values{}
	if reason != "" {
		q.Set("reason", reason)
	}
	_, err := c.call(ctx, http.MethodPost, c.endpoint(q, "instances", id, op), []byte{}, nil, http.StatusAccepted, http.StatusOK)
	return err
}

// Terminate stops instance id for good; the reason becomes its output.
// ErrNotFound if there is no such instance, ErrGone if it has finished.
func (c *Client) Terminate(ctx context.Context, id, reason string) error {
	return c.operation(ctx, id, "terminate", reason)
}

// Suspend pauses instance id (status Suspended) until [Client.Resume].
// ErrNotFound if there is no such instance, ErrGone if it has finished.
func (c *Client) Suspend(ctx context.Context, id, reason string) error {
	return c.operation(ctx, id, "suspend", reason)
}

// Resume continues a suspended instance id. ErrNotFound if there is no
// such instance, ErrGone if it has finished.
func (c *Client) Resume(ctx context.Context, id, reason string) error {
	return c.operation(ctx, id, "resume", reason)
}

// Rewind replays a failed instance id from before its failed tasks.
// ErrPreconditionFailed if it has not failed, ErrGone if it completed or
// was terminated, ErrNotFound if there is none.
func (c *Client) Rewind(ctx context.Context, id, reason string) error {
	return c.operation(ctx, id, "rewind", reason)
}

// Restart starts the orchestrator of instance id again with the same
// input, under a new generated ID (newID) or the same one, and returns the
// ID of the new instance. ErrNotFound if there is no such instance;
// ErrConflict when restarting under the same ID while it still runs.
func (c *Client) Restart(ctx context.Context, id string, newID bool) (string, error) {
	u := c.endpoint(url.Values{"restartWithNewInstanceId": {strconv.FormatBool(newID)}}, "instances", id, "restart")
	r, err := c.call(ctx, http.MethodPost, u, []byte{}, nil, http.StatusAccepted, http.StatusOK)
	if err != nil {
		return "", err
	}
	links, err := decodeBody[ManagementURLs](http.MethodPost, u, r)
	if err != nil {
		return "", err
	}
	if links.ID == "" {
		return "", fmt.Errorf("apiclient: POST %s: the response carries no instance id: %s", u, r.body)
	}
	return links.ID, nil
}

// Purge deletes instance id and its history; ErrNotFound if there is no
// such instance, ErrConflict if it has not finished.
func (c *Client) Purge(ctx context.Context, id string) error {
	_, err := c.call(ctx, http.MethodDelete, c.endpoint(nil, "instances", id), nil, nil, http.StatusOK, http.StatusNoContent)
	return err
}

// PurgeBy deletes the finished instances matching f and returns how many
// it deleted (0 when none matched). f.CreatedFrom is required; CreatedTo
// defaults to now on the server.
func (c *Client) PurgeBy(ctx context.Context, f Filter) (int, error) {
	if f.CreatedFrom.IsZero() {
		return 0, &APIError{StatusCode: http.StatusBadRequest, Code: "BadRequest",
			Message: "PurgeBy needs Filter.CreatedFrom (the API requires createdTimeFrom)"}
	}
	u := c.endpoint(filterQuery(f, false), "instances")
	r, err := c.call(ctx, http.MethodDelete, u, nil, nil, http.StatusOK)
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound && ae.Code == "NotFound" {
		return 0, nil // the API's answer for "nothing matched"
	}
	if err != nil {
		return 0, err
	}
	res, err := decodeBody[struct {
		InstancesDeleted int `json:"instancesDeleted"`
	}](http.MethodDelete, u, r)
	return res.InstancesDeleted, err
}
