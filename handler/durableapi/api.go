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
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

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
)

// Handle serves one request. The route parameter "path" (a catch-all) holds
// the part after the base path; without it the path is taken from the URL.
func (a *API) Handle(ctx context.Context, req *handler.Request) *handler.Response {
	rest, ok := req.Params["path"]
	if !ok {
		rest = strings.TrimPrefix(req.URL.Path, a.opts.BasePath)
	}
	segs := splitPath(rest)
	switch {
	case len(segs) == 2 && strings.EqualFold(segs[0], "instances"):
		if req.Method != http.MethodGet {
			return methodNotAllowed(req.Method, "GET")
		}
		return a.getStatus(ctx, req, segs[1])
	}
	return handler.Error(http.StatusNotFound, CodeUnknownRoute,
		"no management API operation at "+req.Method+" "+a.opts.BasePath+"/"+strings.Join(segs, "/"))
}

func methodNotAllowed(method string, allowed ...string) *handler.Response {
	r := handler.Error(http.StatusMethodNotAllowed, "MethodNotAllowed",
		"method "+method+" is not allowed here; use "+strings.Join(allowed, " or "))
	r.Header.Set("Allow", strings.Join(allowed, ", "))
	return r
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(strings.Trim(p, "/"), "/") {
		if s == "" {
			continue
		}
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
		out = append(out, s)
	}
	return out
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
		if payload.HistoryEvents, err = HistoryEntries(events, showInput, showHistoryOutput); err != nil {
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
		resp.Header.Set("Location", req.URL.String())
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
	case errors.Is(err, client.ErrUnknownOrchestrator):
		return handler.Error(http.StatusNotFound, CodeNoOrchestrator, err.Error())
	case errors.Is(err, client.ErrInstanceExists):
		return handler.Error(http.StatusConflict, CodeConflict, err.Error())
	}
	a.log.Error("management API storage error", "err", err)
	return handler.Error(http.StatusInternalServerError, CodeInternal, "storage error: "+err.Error())
}

// ClientError maps an error from the task hub client to a JSON error
// response, for client functions such as HttpStart.
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
func NewStatusPayload(st backend.InstanceState, showInput bool) StatusPayload {
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
	scheduled := map[int32]history.Event{}
	var out []json.RawMessage
	for _, ev := range events {
		entry := map[string]any{"EventType": ev.Type.String(), "Timestamp": ev.Timestamp.UTC().Format(time.RFC3339Nano)}
		switch ev.Type {
		case history.OrchestratorStarted, history.OrchestratorCompleted:
			continue
		case history.TaskScheduled, history.SubOrchestrationInstanceCreated:
			scheduled[ev.EventID] = ev
			continue
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

// ManagementURLsFor builds the management links for instanceID, with the
// scheme and host of the incoming request and its `code` carried over.
func (a *API) ManagementURLsFor(req *handler.Request, instanceID string) ManagementURLs {
	origin := req.URL.Scheme + "://" + req.URL.Host
	inst := origin + a.opts.BasePath + "/instances/" + url.PathEscape(instanceID)
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
