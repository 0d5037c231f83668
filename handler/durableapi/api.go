// Package durableapi serves the Durable Functions HTTP management API
// (instances/{id} and friends) over a task hub client, under a normal
// function route such as /api/durabletask (custom handlers may not use the
// host's /runtime/webhooks/durabletask space). It also builds the
// check-status response that client functions return.
package durableapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// Options configure the API.
type Options struct {
	// BasePath is the public path the API is served under, e.g. "/api/durabletask".
	BasePath string
	// HubName is reported in management URLs (taskHub=...).
	HubName string
	// Connection is the storage connection setting name reported in
	// management URLs (connection=...). Default "Storage".
	Connection string
	Logger     *slog.Logger
}

// API is the management API.
type API struct {
	c    *client.Client
	opts Options
	log  *slog.Logger
}

// New returns the management API over c.
func New(c *client.Client, opts Options) *API {
	if opts.Connection == "" {
		opts.Connection = "Storage"
	}
	if opts.BasePath == "" {
		opts.BasePath = "/api/durabletask"
	}
	opts.BasePath = "/" + strings.Trim(opts.BasePath, "/")
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &API{c: c, opts: opts, log: opts.Logger}
}

// Error codes of the API's JSON errors.
const (
	CodeBadRequest     = "BadRequest"
	CodeNotFound       = "NotFound"
	CodeInternal       = "InternalError"
	CodeConflict       = "Conflict"
	CodeUnknownRoute   = "UnknownRoute"
	CodeBadInstanceID  = "InvalidInstanceId"
	CodeBadInput       = "InvalidInput"
	CodeNoOrchestrator = "OrchestratorNotFound"
	CodeGone           = "InstanceFinished"
	CodeNotFailed      = "NotFailed"
	// CodeBadEntityID: an entity name or key breaks the entity ID rules
	// (empty, '/', '@' in the name, control characters, not UTF-8).
	CodeBadEntityID = "InvalidEntityId"
	// CodeNoEntity: the app defines no entity of the name.
	CodeNoEntity = "EntityNotFound"
	// CodeOutcomeUnknown: storage failed during a start and whether the
	// instance was started cannot be told now (503).
	CodeOutcomeUnknown = "StartOutcomeUnknown"
	// CodeUnavailable answers calls made before the task hub is ready
	// (storage not reachable yet), with 503 and Retry-After.
	CodeUnavailable = "StorageUnavailable"
)

// Handle serves one request. The operation is read from the path after the
// base path, each segment decoded exactly once: from Request.EscapedPath
// when the handler received the request itself, else from the catch-all
// route parameter "path" the Functions host decoded (used as it is), else
// from the URL path.
//
//	POST   orchestrators/{name}[/{instanceId}]   start (optionally wait: timeout, pollingInterval)
//	GET    instances                             list (runtimeStatus, createdTimeFrom/To, instanceIdPrefix, showInput, top)
//	DELETE instances                             purge many (createdTimeFrom required)
//	GET    instances/{id}                        status (showInput, showHistory, showHistoryOutput, showScheduled, returnInternalServerErrorOnFailure)
//	DELETE instances/{id}                        purge one
//	POST   instances/{id}/raiseEvent/{name}      raise an event
//	POST   instances/{id}/{terminate|suspend|resume|rewind}?reason=
//	POST   instances/{id}/restart?restartWithNewInstanceId=
//	POST   entities/{name}/{key}?op=             signal an entity (body = input)
//	GET    entities/{name}/{key}                 an entity's state
//	GET    entities[/{name}]                     list (fetchState, lastOperationTimeFrom/To, top)
func (a *API) Handle(ctx context.Context, req *handler.Request) *handler.Response {
	segs, errResp := a.segments(req)
	if errResp != nil {
		return errResp
	}
	if errResp := checkQueryText(req.Query); errResp != nil {
		return errResp
	}
	n := len(segs)
	switch {
	case n >= 2 && n <= 3 && strings.EqualFold(segs[0], "orchestrators"):
		if req.Method != http.MethodPost {
			return methodNotAllowed(req.Method, "POST")
		}
		id := ""
		if n == 3 {
			id = segs[2]
		}
		return a.start(ctx, req, segs[1], id)
	case n == 1 && strings.EqualFold(segs[0], "instances"):
		switch req.Method {
		case http.MethodGet:
			return a.list(ctx, req)
		case http.MethodDelete:
			return a.purgeMany(ctx, req)
		}
		return methodNotAllowed(req.Method, "GET", "DELETE")
	case n == 2 && strings.EqualFold(segs[0], "instances"):
		switch req.Method {
		case http.MethodGet:
			return a.getStatus(ctx, req, segs[1])
		case http.MethodDelete:
			return a.purgeOne(ctx, segs[1])
		}
		return methodNotAllowed(req.Method, "GET", "DELETE")
	case n == 4 && strings.EqualFold(segs[0], "instances") && strings.EqualFold(segs[2], "raiseEvent"):
		if req.Method != http.MethodPost {
			return methodNotAllowed(req.Method, "POST")
		}
		return a.raiseEvent(ctx, req, segs[1], segs[3])
	case n == 3 && strings.EqualFold(segs[0], "instances"):
		if req.Method != http.MethodPost {
			return methodNotAllowed(req.Method, "POST")
		}
		return a.operation(ctx, req, segs[1], strings.ToLower(segs[2]))
	case n <= 2 && strings.EqualFold(segs[0], "entities") && req.Method == http.MethodGet:
		name := ""
		if n == 2 {
			name = segs[1]
		}
		return a.listEntities(ctx, req, name)
	case n == 1 && strings.EqualFold(segs[0], "entities"):
		return methodNotAllowed(req.Method, "GET")
	case n >= 2 && strings.EqualFold(segs[0], "entities"):
		switch req.Method {
		case http.MethodPost, http.MethodGet:
		default:
			return methodNotAllowed(req.Method, "GET", "POST")
		}
		id, errResp := entityID(segs[1:])
		if errResp != nil {
			return errResp
		}
		if req.Method == http.MethodPost {
			return a.signalEntity(ctx, req, id)
		}
		return a.readEntity(ctx, id)
	}
	return handler.Error(http.StatusNotFound, CodeUnknownRoute,
		"no management API operation at "+req.Method+" "+a.opts.BasePath+"/"+strings.Join(segs, "/"))
}

// start serves POST orchestrators/{name}[/{instanceId}].
func (a *API) start(ctx context.Context, req *handler.Request, name, id string) *handler.Response {
	timeout, interval, errResp := waitParams(req.Query)
	if errResp != nil {
		return errResp
	}
	// version: the JavaScript client's startNew({version}) sends it as a
	// query parameter; absent, the app's default version applies.
	got, err := a.c.StartNew(ctx, name, client.StartOptions{InstanceID: id, RawInput: strings.TrimSpace(string(req.Body)),
		Version: req.Query.Get("version")})
	if err != nil {
		return a.clientError(err)
	}
	return a.WaitOrCheckStatus(ctx, req, got, timeout, interval)
}

// waitParams reads the timeout and pollingInterval query parameters
// (seconds); both are needed for the wait form.
func waitParams(q url.Values) (time.Duration, time.Duration, *handler.Response) {
	ts, ps := q.Get("timeout"), q.Get("pollingInterval")
	if ts == "" && ps == "" {
		return 0, 0, nil
	}
	parse := func(name, v string) (time.Duration, *handler.Response) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 3600 {
			return 0, handler.Error(http.StatusBadRequest, CodeBadRequest,
				fmt.Sprintf("query parameter %s=%q: want a number of seconds between 0 and 3600", name, v))
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	if ts == "" || ps == "" {
		return 0, 0, handler.Error(http.StatusBadRequest, CodeBadRequest, "the wait form needs both timeout and pollingInterval (seconds)")
	}
	t, r := parse("timeout", ts)
	if r != nil {
		return 0, 0, r
	}
	p, r := parse("pollingInterval", ps)
	if r != nil {
		return 0, 0, r
	}
	return t, p, nil
}

// WaitOrCheckStatus waits up to timeout for the instance to finish: a
// Completed instance answers 200 with its output, Failed 500 and
// Terminated/Canceled 200 with the status; an instance still running (or
// timeout 0) gets the 202 check-status response.
func (a *API) WaitOrCheckStatus(ctx context.Context, req *handler.Request, id string, timeout, interval time.Duration) *handler.Response {
	if timeout <= 0 {
		return a.CheckStatusResponse(req, id)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := a.c.WaitForCompletion(wctx, id, interval)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return a.CheckStatusResponse(req, id)
	case err != nil:
		return a.clientError(err)
	case st.Status == history.StatusCompleted:
		return &handler.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, Body: rawJSON(st.Output)}
	case st.Status == history.StatusFailed:
		return handler.JSON(http.StatusInternalServerError, NewStatusPayload(st, true))
	}
	return handler.JSON(http.StatusOK, NewStatusPayload(st, true))
}

// list serves GET instances.
func (a *API) list(ctx context.Context, req *handler.Request) *handler.Response {
	q, errResp := parseQuery(req.Query, true)
	if errResp != nil {
		return errResp
	}
	q.Continuation = req.Header.Get("x-ms-continuation-token")
	rows, next, err := a.c.ListInstances(ctx, q)
	if err != nil {
		if strings.Contains(err.Error(), "continuation") {
			return handler.Error(http.StatusBadRequest, CodeBadRequest, "header x-ms-continuation-token: "+err.Error())
		}
		return a.clientError(err)
	}
	out := make([]StatusPayload, 0, len(rows))
	for _, st := range rows {
		out = append(out, NewStatusPayload(st, q.WithInput))
	}
	resp := handler.JSON(http.StatusOK, out)
	if next != "" {
		resp.Header.Set("x-ms-continuation-token", next)
	}
	return resp
}

// MaxPageSize is the largest page (top) the list operation accepts.
const MaxPageSize = 1000

// parseQuery reads the instance filters of list and purge requests.
func parseQuery(v url.Values, paging bool) (client.Query, *handler.Response) {
	q := client.Query{WithInput: boolParam(v, "showInput", true), InstanceIDPrefix: v.Get("instanceIdPrefix")}
	for _, list := range v["runtimeStatus"] {
		for _, name := range strings.Split(list, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			s, err := history.ParseStatus(name)
			if err != nil {
				return q, handler.Error(http.StatusBadRequest, CodeBadRequest,
					fmt.Sprintf("query parameter runtimeStatus: unknown status %q (use Pending, Running, Completed, ContinuedAsNew, Failed, Canceled, Terminated, Suspended)", name))
			}
			q.Statuses = append(q.Statuses, s)
		}
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"createdTimeFrom", &q.CreatedFrom}, {"createdTimeTo", &q.CreatedTo}} {
		if s := v.Get(p.name); s != "" {
			t, err := parseTime(s)
			if err != nil {
				return q, handler.Error(http.StatusBadRequest, CodeBadRequest,
					fmt.Sprintf("query parameter %s=%q is not a date (use ISO 8601, e.g. 2026-01-02T15:04:05Z)", p.name, s))
			}
			*p.dst = t
		}
	}
	if !q.CreatedFrom.IsZero() && !q.CreatedTo.IsZero() && q.CreatedTo.Before(q.CreatedFrom) {
		return q, handler.Error(http.StatusBadRequest, CodeBadRequest, "createdTimeTo is before createdTimeFrom")
	}
	if s := v.Get("top"); s != "" && paging {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > MaxPageSize {
			return q, handler.Error(http.StatusBadRequest, CodeBadRequest,
				fmt.Sprintf("query parameter top=%q: want a whole number from 1 to %d", s, MaxPageSize))
		}
		q.PageSize = int32(n)
	}
	return q, nil
}

// parseTime accepts ISO 8601 / RFC 3339 dates, with or without an offset
// (then UTC) or time of day.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date: %q", s)
}

// purgeOne serves DELETE instances/{id}.
func (a *API) purgeOne(ctx context.Context, id string) *handler.Response {
	if err := a.c.Purge(ctx, id); err != nil {
		return a.clientError(err)
	}
	return handler.JSON(http.StatusOK, map[string]int{"instancesDeleted": 1})
}

// purgeMany serves DELETE instances?createdTimeFrom=...
func (a *API) purgeMany(ctx context.Context, req *handler.Request) *handler.Response {
	if req.Query.Get("createdTimeFrom") == "" {
		return handler.Error(http.StatusBadRequest, CodeBadRequest, "Please provide value for 'createdTimeFrom'")
	}
	q, errResp := parseQuery(req.Query, false)
	if errResp != nil {
		return errResp
	}
	n, err := a.c.PurgeBy(ctx, q)
	if err != nil {
		return a.clientError(err)
	}
	if n == 0 {
		return handler.Error(http.StatusNotFound, CodeNotFound, "no finished instance matches the filter")
	}
	return handler.JSON(http.StatusOK, map[string]int{"instancesDeleted": n})
}

// raiseEvent serves POST instances/{id}/raiseEvent/{name}.
func (a *API) raiseEvent(ctx context.Context, req *handler.Request, id, name string) *handler.Response {
	body := strings.TrimSpace(string(req.Body))
	if ct := req.Header.Get("Content-Type"); body != "" && ct != "" && !strings.Contains(strings.ToLower(ct), "json") {
		return handler.Error(http.StatusBadRequest, CodeBadInput, "the event data must be JSON (Content-Type application/json), not "+ct)
	}
	if err := a.c.RaiseEvent(ctx, id, name, body); err != nil {
		return a.clientError(err)
	}
	return &handler.Response{StatusCode: http.StatusAccepted}
}

// operation serves POST instances/{id}/{op}.
func (a *API) operation(ctx context.Context, req *handler.Request, id, op string) *handler.Response {
	reason := req.Query.Get("reason")
	var err error
	switch op {
	case "terminate":
		err = a.c.Terminate(ctx, id, reason)
	case "suspend":
		err = a.c.Suspend(ctx, id, reason)
	case "resume":
		err = a.c.Resume(ctx, id, reason)
	case "rewind":
		err = a.c.Rewind(ctx, id, reason)
	case "restart":
		timeout, interval, errResp := waitParams(req.Query)
		if errResp != nil {
			return errResp
		}
		newID := boolParam(req.Query, "restartWithNewInstanceId", true)
		got, err := a.c.Restart(ctx, id, newID)
		if err != nil {
			return a.clientError(err)
		}
		return a.WaitOrCheckStatus(ctx, req, got, timeout, interval)
	default:
		return handler.Error(http.StatusNotFound, CodeUnknownRoute,
			fmt.Sprintf("unknown instance operation %q (use raiseEvent, terminate, suspend, resume, rewind or restart)", op))
	}
	if err != nil {
		return a.clientError(err)
	}
	return &handler.Response{StatusCode: http.StatusAccepted}
}

// entityID reads the entity ID of entities/{name}/{key} from the segments
// after "entities". A key with '/' arrives as more segments (or, escaped as
// %2F, inside one) and is refused either way, as is an empty key.
func entityID(segs []string) (history.EntityID, *handler.Response) {
	switch {
	case len(segs) == 1:
		return history.EntityID{}, handler.Error(http.StatusBadRequest, CodeBadEntityID,
			fmt.Sprintf("entities/%s/{key}: the entity key is missing or empty", segs[0]))
	case len(segs) > 2:
		return history.EntityID{}, handler.Error(http.StatusBadRequest, CodeBadEntityID,
			fmt.Sprintf("entities/%s/%s: the entity key may not contain '/'", segs[0], strings.Join(segs[1:], "/")))
	}
	id := history.NewEntityID(segs[0], segs[1])
	if err := id.Validate(); err != nil {
		return id, handler.Error(http.StatusBadRequest, CodeBadEntityID, err.Error())
	}
	return id, nil
}

// signalEntity serves POST entities/{name}/{key}?op=: a one-way signal of
// operation op with the body (JSON whatever its Content-Type, so that
// `curl -d 5` works; empty for no input) as its input, answered 202 with no
// body as Durable Functions does. Durable Functions sends an empty operation
// name when op is absent; an operation "" reaches no Go entity's code, so
// we refuse it instead of sending it.
func (a *API) signalEntity(ctx context.Context, req *handler.Request, id history.EntityID) *handler.Response {
	op := req.Query.Get("op")
	if op == "" {
		return handler.Error(http.StatusBadRequest, CodeBadRequest,
			fmt.Sprintf("query parameter op (the operation to signal to entity %s) is missing or empty", id))
	}
	var input any
	if body := strings.TrimSpace(string(req.Body)); body != "" {
		if !utf8.ValidString(body) {
			return handler.Error(http.StatusBadRequest, CodeBadInput,
				fmt.Sprintf("the input of operation %q on entity %s is not valid UTF-8 (byte %d)", op, id, invalidUTF8At(body)))
		}
		if !json.Valid([]byte(body)) {
			return handler.Error(http.StatusBadRequest, CodeBadInput,
				fmt.Sprintf("the input of operation %q on entity %s is not JSON: %s (a JSON string needs quotes)", op, id, quoteHint(body)))
		}
		input = json.RawMessage(body)
	}
	if err := a.c.SignalEntity(ctx, id, op, input); err != nil {
		return a.clientError(err)
	}
	return &handler.Response{StatusCode: http.StatusAccepted}
}

// readEntity serves GET entities/{name}/{key}: 200 with the state as the
// body, 404 when the entity has no state.
func (a *API) readEntity(ctx context.Context, id history.EntityID) *handler.Response {
	st, err := a.c.ReadEntityState(ctx, id)
	if err != nil {
		return a.clientError(err)
	}
	return &handler.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		Body: []byte(st.State)}
}

// EntityPayload is one entity of an entity list, as Durable Functions
// renders it.
type EntityPayload struct {
	EntityID          EntityIDPayload `json:"entityId"`
	LastOperationTime string          `json:"lastOperationTime"`
	// State is the entity's state, present with fetchState=true.
	State json.RawMessage `json:"state,omitempty"`
}

// EntityIDPayload is an entity ID in JSON: the name (lowercased) and key.
type EntityIDPayload struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// listEntities serves GET entities[/{name}]: one page of the entities with
// state, x-ms-continuation-token in and out as for instances.
func (a *API) listEntities(ctx context.Context, req *handler.Request, name string) *handler.Response {
	q := client.EntityQuery{Name: name, WithState: boolParam(req.Query, "fetchState", false),
		Continuation: req.Header.Get("x-ms-continuation-token")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"lastOperationTimeFrom", &q.LastOperationFrom}, {"lastOperationTimeTo", &q.LastOperationTo}} {
		if s := req.Query.Get(p.name); s != "" {
			t, err := parseTime(s)
			if err != nil {
				return handler.Error(http.StatusBadRequest, CodeBadRequest,
					fmt.Sprintf("query parameter %s=%q is not a date (use ISO 8601, e.g. 2026-01-02T15:04:05Z)", p.name, s))
			}
			*p.dst = t
		}
	}
	if !q.LastOperationFrom.IsZero() && !q.LastOperationTo.IsZero() && q.LastOperationTo.Before(q.LastOperationFrom) {
		return handler.Error(http.StatusBadRequest, CodeBadRequest, "lastOperationTimeTo is before lastOperationTimeFrom")
	}
	if s := req.Query.Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > MaxPageSize {
			return handler.Error(http.StatusBadRequest, CodeBadRequest,
				fmt.Sprintf("query parameter top=%q: want a whole number from 1 to %d", s, MaxPageSize))
		}
		q.PageSize = int32(n)
	}
	list, next, err := a.c.ListEntities(ctx, q)
	if err != nil {
		if strings.Contains(err.Error(), "continuation") {
			return handler.Error(http.StatusBadRequest, CodeBadRequest, "header x-ms-continuation-token: "+err.Error())
		}
		return a.clientError(err)
	}
	out := make([]EntityPayload, 0, len(list))
	for _, e := range list {
		p := EntityPayload{EntityID: EntityIDPayload{Name: e.ID.Name, Key: e.ID.Key},
			LastOperationTime: e.LastOperationTime.UTC().Format(time.RFC3339Nano)}
		if q.WithState {
			p.State = rawJSON(e.State)
		}
		out = append(out, p)
	}
	resp := handler.JSON(http.StatusOK, out)
	if next != "" {
		resp.Header.Set("x-ms-continuation-token", next)
	}
	return resp
}

// invalidUTF8At returns the byte position of the first invalid UTF-8 in s.
func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			return i
		}
	}
	return len(s)
}

// quoteHint shortens a bad body for an error message.
func quoteHint(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func methodNotAllowed(method string, allowed ...string) *handler.Response {
	r := handler.Error(http.StatusMethodNotAllowed, "MethodNotAllowed",
		"method "+method+" is not allowed here; use "+strings.Join(allowed, " or "))
	r.Header.Set("Allow", strings.Join(allowed, ", "))
	return r
}

// segments returns the path segments of the operation (after the base
// path), each decoded exactly once. Empty segments are dropped, as Durable
// Functions trims slashes.
func (a *API) segments(req *handler.Request) ([]string, *handler.Response) {
	if req.EscapedPath != "" {
		if rest, ok := trimBase(req.EscapedPath, a.opts.BasePath); ok {
			var out []string
			for i, s := range strings.Split(rest, "/") {
				if s == "" {
					continue
				}
				v, err := url.PathUnescape(s)
				if err != nil {
					return nil, handler.Error(http.StatusBadRequest, CodeBadRequest,
						fmt.Sprintf("path segment %d after %s (%q) is not validly percent-encoded: %v", i+1, a.opts.BasePath, s, err))
				}
				out = append(out, v)
			}
			return out, nil
		}
	}
	rest, ok := req.Params["path"]
	if !ok {
		rest = strings.TrimPrefix(req.URL.Path, a.opts.BasePath)
	}
	var out []string
	for _, s := range strings.Split(rest, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// trimBase removes base from an escaped path, comparing each segment
// decoded and case-insensitively, and returns the escaped rest.
func trimBase(escaped, base string) (string, bool) {
	rest := strings.TrimPrefix(escaped, "/")
	for _, b := range strings.Split(strings.Trim(base, "/"), "/") {
		if b == "" {
			continue
		}
		seg, after, _ := strings.Cut(rest, "/")
		if v, err := url.PathUnescape(seg); err != nil || !strings.EqualFold(v, b) {
			return "", false
		}
		rest = after
	}
	return rest, true
}

// checkQueryText refuses query parameters whose decoded names or values are
// not valid UTF-8: stored as JSON they would silently change.
func checkQueryText(q url.Values) *handler.Response {
	for k, vs := range q {
		if !utf8.ValidString(k) {
			return handler.Error(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("query parameter name %q is not valid UTF-8", k))
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return handler.Error(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("query parameter %s=%q is not valid UTF-8", k, v))
			}
		}
	}
	return nil
}

// boolParam parses a query flag like .NET's bool.TryParse: "true"/"false"
// in any case; anything else gives def.
func boolParam(q url.Values, name string, def bool) bool {
	switch strings.ToLower(q.Get(name)) {
	case "true":
		return true
	case "false":
		return false
	}
	return def
}

// StatusPayload is the JSON body of a status response.
type StatusPayload struct {
	Name            string            `json:"name"`
	InstanceID      string            `json:"instanceId"`
	RuntimeStatus   string            `json:"runtimeStatus"`
	Input           json.RawMessage   `json:"input"`
	CustomStatus    json.RawMessage   `json:"customStatus"`
	Output          json.RawMessage   `json:"output"`
	CreatedTime     string            `json:"createdTime"`
	LastUpdatedTime string            `json:"lastUpdatedTime"`
	HistoryEvents   []json.RawMessage `json:"historyEvents,omitempty"`
}

func (a *API) getStatus(ctx context.Context, req *handler.Request, id string) *handler.Response {
	showInput := boolParam(req.Query, "showInput", true)
	showHistory := boolParam(req.Query, "showHistory", false)
	showHistoryOutput := boolParam(req.Query, "showHistoryOutput", false)
	// showScheduled is our extension (see HistoryOptions.Scheduled).
	showScheduled := boolParam(req.Query, "showScheduled", false)
	failAs500 := boolParam(req.Query, "returnInternalServerErrorOnFailure", false)

	st, err := a.c.GetStatus(ctx, id, showInput)
	if err != nil {
		return a.clientError(err)
	}
	payload := NewStatusPayload(st, showInput)
	if showHistory {
		events, err := a.c.GetHistory(ctx, id)
		if err != nil {
			return a.clientError(err)
		}
		opts := HistoryOptions{Input: showInput, Output: showHistoryOutput, Scheduled: showScheduled}
		if payload.HistoryEvents, err = HistoryEntriesWith(events, opts); err != nil {
			return a.clientError(err)
		}
		if payload.HistoryEvents == nil {
			payload.HistoryEvents = []json.RawMessage{}
		}
	}
	resp := handler.JSON(http.StatusOK, payload)
	switch st.Status {
	case history.StatusRunning, history.StatusPending, history.StatusContinuedAsNew, history.StatusSuspended:
		resp.StatusCode = http.StatusAccepted
		resp.Header.Set("Location", a.statusURL(req, id))
		resp.Header.Set("Retry-After", "5")
	case history.StatusFailed:
		if failAs500 {
			resp.StatusCode = http.StatusInternalServerError
		}
	}
	return resp
}

// clientError maps client errors to JSON error responses.
func (a *API) clientError(err error) *handler.Response {
	switch {
	case errors.Is(err, client.ErrNotFound):
		return handler.Error(http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, client.ErrInvalidInstanceID):
		return handler.Error(http.StatusBadRequest, CodeBadInstanceID, err.Error())
	case errors.Is(err, client.ErrInvalidInput):
		return handler.Error(http.StatusBadRequest, CodeBadInput, err.Error())
	case errors.Is(err, history.ErrInvalidEntityID):
		return handler.Error(http.StatusBadRequest, CodeBadEntityID, err.Error())
	case errors.Is(err, client.ErrUnknownEntity):
		return handler.Error(http.StatusNotFound, CodeNoEntity, err.Error())
	case errors.Is(err, client.ErrUnknownOrchestrator):
		return handler.Error(http.StatusNotFound, CodeNoOrchestrator, err.Error())
	case errors.Is(err, client.ErrInstanceExists), errors.Is(err, client.ErrInstanceRunning):
		return handler.Error(http.StatusConflict, CodeConflict, err.Error())
	case errors.Is(err, client.ErrInstanceFinished):
		return handler.Error(http.StatusGone, CodeGone, err.Error())
	case errors.Is(err, client.ErrNotFailed):
		return handler.Error(http.StatusPreconditionFailed, CodeNotFailed, err.Error())
	case errors.Is(err, backend.ErrUnavailable):
		// Not ready (checked before any write): nothing was started.
		return unavailable(err)
	case errors.Is(err, client.ErrStartOutcomeUnknown):
		a.log.Error("management API: start outcome unknown", "err", err)
		return handler.Error(http.StatusServiceUnavailable, CodeOutcomeUnknown,
			err.Error()+"; the instance runs if its row was written: read its status before starting it again")
	}
	a.log.Error("management API storage error", "err", err)
	return handler.Error(http.StatusInternalServerError, CodeInternal, "storage error: "+err.Error())
}

// unavailable answers 503 with the reason and a Retry-After header (whole
// seconds, at least 1): the task hub is not ready yet.
func unavailable(err error) *handler.Response {
	retry := time.Second
	var ue *backend.UnavailableError
	if errors.As(err, &ue) && ue.RetryAfter > retry {
		retry = ue.RetryAfter
	}
	resp := handler.Error(http.StatusServiceUnavailable, CodeUnavailable, err.Error())
	resp.Header.Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	return resp
}

// ClientError maps an error from the task hub client to a JSON error
// response, for client functions (HandleStart is one).
func (a *API) ClientError(err error) *handler.Response { return a.clientError(err) }

// apiTime formats a time the way Durable Functions does: UTC, second precision.
func apiTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

// rawJSON returns stored JSON text as is, a non-JSON string (such as a
// failure message or termination reason) as a JSON string, and "" as null.
func rawJSON(s string) json.RawMessage {
	if s == "" {
		return json.RawMessage("null")
	}
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

// NewStatusPayload renders an instance status.
func NewStatusPayload(st client.Status, showInput bool) StatusPayload {
	p := StatusPayload{
		Name:            st.Name,
		InstanceID:      st.InstanceID,
		RuntimeStatus:   st.Status.String(),
		Input:           json.RawMessage("null"),
		CustomStatus:    rawJSON(st.CustomStatus),
		Output:          rawJSON(st.Output),
		CreatedTime:     apiTime(st.CreatedTime),
		LastUpdatedTime: apiTime(st.LastUpdatedTime),
	}
	if showInput {
		p.Input = rawJSON(st.Input)
	}
	return p
}

// HistoryEntries renders history the way the Durable Functions status API
// does with showHistory=true: episode framing and scheduling events are
// folded away, completions carry the function name and scheduled time.
func HistoryEntries(events []history.Event, showInput, showOutput bool) ([]json.RawMessage, error) {
	return HistoryEntriesWith(events, HistoryOptions{Input: showInput, Output: showOutput})
}

// HistoryOptions choose what [HistoryEntriesWith] renders.
type HistoryOptions struct {
	// Input shows inputs (showInput), Output results (showHistoryOutput).
	Input, Output bool
	// Scheduled keeps the TaskScheduled and SubOrchestrationInstanceCreated
	// events (showScheduled=true, our extension) in Durable Functions' shape
	// for them (EventType, EventId, Timestamp, Name, Input, InstanceId), and
	// adds EventId to TimerCreated: a call still under way, which has no
	// completion yet, then shows, and each completion's TaskScheduledId (a
	// timer's TimerId) names the EventId it answers. Completions keep their
	// FunctionName and ScheduledTime.
	Scheduled bool
}

// HistoryEntriesWith is [HistoryEntries] with more choices.
func HistoryEntriesWith(events []history.Event, o HistoryOptions) ([]json.RawMessage, error) {
	showInput, showOutput := o.Input, o.Output
	scheduled := map[int32]history.Event{}
	var out []json.RawMessage
	for _, ev := range events {
		entry := map[string]any{"EventType": ev.Type.String(), "Timestamp": ev.Timestamp.UTC().Format(time.RFC3339Nano)}
		switch ev.Type {
		case history.OrchestratorStarted, history.OrchestratorCompleted:
			continue
		case history.TaskScheduled, history.SubOrchestrationInstanceCreated:
			scheduled[ev.EventID] = ev
			if !o.Scheduled {
				continue
			}
			entry["EventId"] = ev.EventID
			entry["Name"] = ev.Name
			if showInput {
				entry["Input"] = rawJSON(ev.Input)
			}
			if ev.Type == history.SubOrchestrationInstanceCreated && ev.InstanceID != "" {
				entry["InstanceId"] = ev.InstanceID
			}
		case history.ExecutionStarted:
			entry["FunctionName"] = ev.Name
			if showInput {
				entry["Input"] = rawJSON(ev.Input)
			}
		case history.TaskCompleted, history.TaskFailed, history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
			// TaskScheduledId is our addition to the Durable Functions shape: it
			// lets a replay test pair each result with the call that asked for it.
			entry["TaskScheduledId"] = ev.TaskScheduledID
			if s, ok := scheduled[ev.TaskScheduledID]; ok {
				entry["FunctionName"] = s.Name
				entry["ScheduledTime"] = s.Timestamp.UTC().Format(time.RFC3339Nano)
				if showInput {
					entry["Input"] = rawJSON(s.Input)
				}
				// InstanceId, our addition too: the child of a
				// sub-orchestration, which the dashboard links to.
				if s.Type == history.SubOrchestrationInstanceCreated && s.InstanceID != "" {
					entry["InstanceId"] = s.InstanceID
				}
			}
			if ev.Type == history.TaskCompleted || ev.Type == history.SubOrchestrationInstanceCompleted {
				if showOutput {
					entry["Result"] = rawJSON(ev.Result)
				}
			} else {
				entry["Reason"] = ev.Reason
				entry["Details"] = ev.Details
				if ev.Failure != nil {
					entry["FailureDetails"] = ev.Failure
				}
			}
		case history.ExecutionCompleted:
			entry["OrchestrationStatus"] = ev.Status.String()
			if showOutput {
				entry["Result"] = rawJSON(ev.Result)
			}
			if ev.Failure != nil {
				entry["FailureDetails"] = ev.Failure
			}
		case history.TimerCreated:
			entry["FireAt"] = ev.FireAt.UTC().Format(time.RFC3339Nano)
			if o.Scheduled {
				entry["EventId"] = ev.EventID
			}
		case history.TimerFired:
			entry["FireAt"] = ev.FireAt.UTC().Format(time.RFC3339Nano)
			entry["TimerId"] = ev.TimerID // our addition, as TaskScheduledId
		case history.EventRaised, history.EventSent:
			entry["Name"] = ev.Name
			if showInput {
				entry["Input"] = rawJSON(ev.Input)
			}
		case history.ExecutionTerminated:
			entry["Input"] = rawJSON(ev.Input)
		case history.ExecutionSuspended, history.ExecutionResumed:
			entry["Reason"] = ev.Reason
		}
		b, err := json.Marshal(entry)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// ManagementURLs are the links of a check-status response.
type ManagementURLs struct {
	ID                    string `json:"id"`
	StatusQueryGetURI     string `json:"statusQueryGetUri"`
	SendEventPostURI      string `json:"sendEventPostUri"`
	TerminatePostURI      string `json:"terminatePostUri"`
	RewindPostURI         string `json:"rewindPostUri"`
	PurgeHistoryDeleteURI string `json:"purgeHistoryDeleteUri"`
	RestartPostURI        string `json:"restartPostUri"`
	SuspendPostURI        string `json:"suspendPostUri"`
	ResumePostURI         string `json:"resumePostUri"`
}

// origin is the scheme://host of links answering req; "" (links relative
// to the server) when not even the server knows a host for it.
func origin(req *handler.Request) string {
	if req.URL.Host == "" {
		return ""
	}
	scheme := req.URL.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + req.URL.Host
}

// statusURL is the status URL of instance id with the request's query:
// the Location of a 202 status answer. It is built from the ID rather than
// taken from the request URL, whose path the Functions host may have
// rendered in another (already decoded) form.
func (a *API) statusURL(req *handler.Request, id string) string {
	u := origin(req) + a.opts.BasePath + "/instances/" + url.PathEscape(id)
	if req.URL.RawQuery != "" {
		u += "?" + req.URL.RawQuery
	}
	return u
}

// ManagementURLsFor builds the management links for instanceID, with the
// scheme and host of the incoming request and its `code` carried over.
// The ID is escaped as one path segment, so each link decodes back to it
// exactly once.
func (a *API) ManagementURLsFor(req *handler.Request, instanceID string) ManagementURLs {
	inst := origin(req) + a.opts.BasePath + "/instances/" + url.PathEscape(instanceID)
	q := "taskHub=" + url.QueryEscape(a.opts.HubName) + "&connection=" + url.QueryEscape(a.opts.Connection)
	if code := req.Query.Get("code"); code != "" {
		q += "&code=" + url.QueryEscape(code)
	}
	return ManagementURLs{
		ID:                    instanceID,
		StatusQueryGetURI:     inst + "?" + q,
		SendEventPostURI:      inst + "/raiseEvent/{eventName}?" + q,
		TerminatePostURI:      inst + "/terminate?reason={text}&" + q,
		RewindPostURI:         inst + "/rewind?reason={text}&" + q,
		PurgeHistoryDeleteURI: inst + "?" + q,
		RestartPostURI:        inst + "/restart?" + q,
		SuspendPostURI:        inst + "/suspend?reason={text}&" + q,
		ResumePostURI:         inst + "/resume?reason={text}&" + q,
	}
}

// CheckStatusResponse is the 202 response a client function returns after
// starting an instance: the management links as JSON, Location pointing at
// the status URL and Retry-After 10 seconds.
func (a *API) CheckStatusResponse(req *handler.Request, instanceID string) *handler.Response {
	links := a.ManagementURLsFor(req, instanceID)
	resp := handler.JSON(http.StatusAccepted, links)
	resp.Header.Set("Location", links.StatusQueryGetURI)
	resp.Header.Set("Retry-After", "10")
	return resp
}

// StartRouteParam is the route parameter HandleStart reads the
// orchestrator name from, as in the route "orchestrators/{functionName}".
const StartRouteParam = "functionName"

// HandleStart is a complete client function, the Go counterpart of the
// JavaScript sample's HttpStart: it starts the orchestrator named by the
// route parameter StartRouteParam with the request body as its input (JSON,
// surrounding white space ignored; empty for null) under a new instance ID
// (with the orchestration version of the query parameter version, else the
// app's default version), and answers 202 with the
// check-status payload (CheckStatusResponse). Errors are the management
// API's: 404 for an orchestrator this app does not register, 400 for a
// body that is not JSON or a route without a name. Bind it to a function
// whose function.json has that route:
//
//	app.Handler.HandleHTTP("HttpStart", app.API.HandleStart)
func (a *API) HandleStart(ctx context.Context, req *handler.Request) *handler.Response {
	name := req.Params[StartRouteParam]
	if name == "" {
		return handler.Error(http.StatusBadRequest, CodeBadRequest,
			"the route needs an orchestrator name: orchestrators/{"+StartRouteParam+"}")
	}
	id, err := a.c.StartNew(ctx, name, client.StartOptions{RawInput: strings.TrimSpace(string(req.Body)), Version: req.Query.Get("version")})
	if err != nil {
		return a.clientError(err)
	}
	return a.CheckStatusResponse(req, id)
}
