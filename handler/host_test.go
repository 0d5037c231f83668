package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// hostReply is a decoded invocation reply.
type hostReply struct {
	Outputs     map[string]json.RawMessage `json:"Outputs"`
	Logs        []string                   `json:"Logs"`
	ReturnValue json.RawMessage            `json:"ReturnValue"`
}

type hostHTTPOut struct {
	StatusCode int               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

// invoke posts an invocation payload the way the host does and returns the
// raw recorder.
func invoke(app *App, function, payload string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "http://127.0.0.1:5000/"+function, strings.NewReader(payload))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set(HeaderInvocationID, "0f8fad5b-d9cb-469f-a165-70867728950e")
	req.Header.Set(HeaderHostVersion, "4.1037.0.0")
	req.Header.Set("User-Agent", "Azure-Functions-Host/4.1037.0.0")
	rec := httptest.NewRecorder()
	app.HostHandler().ServeHTTP(rec, req)
	return rec
}

// decodeReply checks the invocation reply envelope and returns the http
// output (from Outputs[out], or ReturnValue when out is "$return").
func decodeReply(t *testing.T, rec *httptest.ResponseRecorder, out string) (hostReply, hostHTTPOut) {
	t.Helper()
	if rec.Code != 200 {
		t.Fatalf("invocation reply status = %d, want 200; body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("invocation reply Content-Type = %q", ct)
	}
	var reply hostReply
	if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
		t.Fatalf("invocation reply %s: %v", rec.Body, err)
	}
	if reply.Outputs == nil || reply.Logs == nil {
		t.Fatalf("Outputs and Logs must be present: %s", rec.Body)
	}
	raw := reply.ReturnValue
	if out != "$return" {
		raw = reply.Outputs[out]
		if string(reply.ReturnValue) != "null" {
			t.Errorf("ReturnValue = %s, want null", reply.ReturnValue)
		}
	}
	var ho hostHTTPOut
	if err := json.Unmarshal(raw, &ho); err != nil {
		t.Fatalf("http output %q in %s: %v", out, rec.Body, err)
	}
	return reply, ho
}

// The reference's illustrative payload (section 2.5), shapes only.
const referencePayload = `{"Data":{"req":{"Url":"http://localhost:7071/api/orchestrators/Flow?x=1","Method":"POST",
  "Query":{"x":"1"},"Headers":{"Content-Type":["application/json"],"Host":["localhost:7071"]},
  "Params":{"functionName":"Flow"},"Identities":[{"AuthenticationType":null,"IsAuthenticated":false,"Claims":[]}],
  "Body":"{\"a\":1}"}},
 "Metadata":{"Query":{"x":"1"},"Headers":{"Content-Type":"application/json","Host":"localhost:7071"},
  "x":"\"1\"","name":"\"Flow\"","a":"\"1\"","sys":{"MethodName":"Start","UtcNow":"2025-01-01T10:00:00.1234567Z","RandGuid":"0f8fad5b-d9cb-469f-a165-70867728950e"}}}`

func TestHostInvocationPayloads(t *testing.T) {
	app := newTestApp(t, `{"version":"2.0"}`, Options{MaxRequestBodyBytes: 64, PublicHost: "0.0.0.0:7071"})
	tests := []struct {
		name     string
		function string
		payload  string
		out      string
		check    func(t *testing.T, e echoed)
	}{
		{"reference payload", "Start", referencePayload, "res", func(t *testing.T, e echoed) {
			if e.Method != "POST" || e.URL != "http://localhost:7071/api/orchestrators/Flow?x=1" || e.Host != "localhost:7071" ||
				e.CType != "application/json" || e.Body != `{"a":1}` || e.Params["functionName"] != "Flow" || e.Query["x"][0] != "1" ||
				e.InvID != "0f8fad5b-d9cb-469f-a165-70867728950e" {
				t.Errorf("echo = %+v", e)
			}
			if _, ok := e.Params["instanceId"]; ok {
				t.Errorf("absent optional param present: %v", e.Params)
			}
		}},
		{"Query as a JSON string (older hosts)", "Start", `{"Data":{"req":{"Url":"http://h/api/orchestrators/Flow","Method":"POST",
			"Query":"{\"x\":\"1\",\"y\":\"2\"}","Headers":{},"Params":{"functionName":"Flow"}}},"Metadata":{}}`, "res",
			func(t *testing.T, e echoed) {
				if e.Query["x"][0] != "1" || e.Query["y"][0] != "2" {
					t.Errorf("query = %v", e.Query)
				}
			}},
		{"URL query wins and keeps repeats", "Start", `{"Data":{"req":{"Url":"http://h/api/orchestrators/Flow?x=1&x=2","Method":"POST",
			"Query":{"x":"1,2"},"Headers":{}}},"Metadata":{}}`, "res",
			func(t *testing.T, e echoed) {
				if strings.Join(e.Query["x"], "|") != "1|2" {
					t.Errorf("query = %v", e.Query)
				}
			}},
		{"header values as strings", "Start", `{"Data":{"req":{"Url":"http://h/api/orchestrators/Flow","Method":"post",
			"Headers":{"content-type":"text/plain","Host":"h:1"},"Params":{"functionName":"Flow"},"Body":"hi"}},"Metadata":{}}`, "res",
			func(t *testing.T, e echoed) {
				if e.CType != "text/plain" || e.Host != "h:1" || e.Body != "hi" || e.Method != "POST" {
					t.Errorf("echo = %+v", e)
				}
			}},
		{"body absent", "Start", `{"Data":{"req":{"Url":"http://h/api/orchestrators/Flow","Method":"POST","Headers":{},"Params":{}}},"Metadata":{}}`, "res",
			func(t *testing.T, e echoed) {
				if !e.NoBody {
					t.Errorf("body = %q, want nil", e.Body)
				}
			}},
		{"base64 body for octet-stream", "Start", `{"Data":{"req":{"Url":"http://h/api/orchestrators/Flow","Method":"POST",
			"Headers":{"Content-Type":["application/octet-stream"]},"Body":"aGVsbG8="}},"Metadata":{}}`, "res",
			func(t *testing.T, e echoed) {
				if e.Body != "hello" {
					t.Errorf("body = %q", e.Body)
				}
			}},
		{"base64 body for multipart", "Start", `{"Data":{"req":{"Url":"http://h/api/orchestrators/Flow","Method":"POST",
			"Headers":{"Content-Type":["multipart/form-data; boundary=x"]},"Body":"LS14LS0="}},"Metadata":{}}`, "res",
			func(t *testing.T, e echoed) {
				if e.Body != "--x--" {
					t.Errorf("body = %q", e.Body)
				}
			}},
		{"params from the URL when the host sends none", "Start", `{"Data":{"req":{"Url":"http://h/api/orchestrators/Flow/i%201","Method":"POST"}},"Metadata":{}}`, "res",
			func(t *testing.T, e echoed) {
				if e.Params["functionName"] != "Flow" || e.Params["instanceId"] != "i 1" {
					t.Errorf("params = %v", e.Params)
				}
			}},
		{"null optional param", "Start", `{"Data":{"req":{"Url":"http://h/api/orchestrators/Flow","Method":"POST","Params":{"functionName":"Flow","instanceId":null}}},"Metadata":{}}`, "res",
			func(t *testing.T, e echoed) {
				if _, ok := e.Params["instanceId"]; ok || e.Params["functionName"] != "Flow" {
					t.Errorf("params = %v", e.Params)
				}
			}},
		{"lower-case field names and request as a string", "Start", `{"data":{"req":"{\"url\":\"http://h/api/orchestrators/Flow\",\"method\":\"GET\"}"},"metadata":{}}`, "res",
			func(t *testing.T, e echoed) {
				if e.Method != "GET" || e.Params["functionName"] != "Flow" {
					t.Errorf("echo = %+v", e)
				}
			}},
		{"$return output", "Plain", `{"Data":{"req":{"Url":"http://h/api/Plain","Method":"GET"}},"Metadata":{}}`, "$return",
			func(t *testing.T, e echoed) {
				if e.URL != "http://h/api/Plain" {
					t.Errorf("echo = %+v", e)
				}
			}},
		{"the host's params are decoded already: no second decoding", "Start", `{"Data":{"req":{"Url":"http://h/api/orchestrators/Flow/pct%41",
			"Method":"POST","Params":{"functionName":"Flow","instanceId":"pct%41"}}},"Metadata":{}}`, "res",
			func(t *testing.T, e echoed) {
				if e.Params["instanceId"] != "pct%41" || e.Escaped != "" {
					t.Errorf("params = %v, escaped = %q", e.Params, e.Escaped)
				}
			}},
		{"a request that named no host gets the public host", "Start", `{"Data":{"req":{"Url":"http:///api/orchestrators/Flow",
			"Method":"POST","Params":{"functionName":"Flow"}}},"Metadata":{}}`, "res",
			func(t *testing.T, e echoed) {
				if e.URL != "http://localhost:7071/api/orchestrators/Flow" {
					t.Errorf("url = %q", e.URL)
				}
			}},
		{"function name matched case-insensitively", "start", referencePayload, "res", func(t *testing.T, e echoed) {
			if e.Params["functionName"] != "Flow" {
				t.Errorf("echo = %+v", e)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, out := decodeReply(t, invoke(app, tt.function, tt.payload), tt.out)
			if out.StatusCode != 200 {
				t.Fatalf("http output = %+v", out)
			}
			if out.Headers["Content-Type"] != "application/json; charset=utf-8" {
				t.Errorf("headers = %v", out.Headers)
			}
			if tt.out == "$return" && len(reply.Outputs) != 0 {
				t.Errorf("Outputs = %v, want empty with $return", reply.Outputs)
			}
			var e echoed
			if err := json.Unmarshal([]byte(out.Body), &e); err != nil {
				t.Fatalf("body %q: %v", out.Body, err)
			}
			tt.check(t, e)
		})
	}
}

func TestHostInvocationErrors(t *testing.T) {
	app := newTestApp(t, `{"version":"2.0"}`, Options{MaxRequestBodyBytes: 4})
	tests := []struct {
		name       string
		function   string
		payload    string
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"undecodable payload", "Start", `{"Data":`, 500, CodeInvalidInvocation, "could not decode the host's invocation"},
		{"no Data", "Start", `{"Metadata":{}}`, 500, CodeInvalidInvocation, `no "Data"`},
		{"no request in Data", "Start", `{"Data":{"other":"\"x\""}}`, 500, CodeInvalidInvocation, `no "req" request`},
		{"request without Url", "Start", `{"Data":{"req":{"Method":"GET"}}}`, 500, CodeInvalidInvocation, "missing Url"},
		{"bad base64", "Start", `{"Data":{"req":{"Url":"http://h/api/orchestrators/F","Method":"POST","Headers":{"Content-Type":["application/octet-stream"]},"Body":"%%%"}}}`,
			500, CodeInvalidInvocation, "not base64"},
		{"body over the limit", "Start", `{"Data":{"req":{"Url":"http://h/api/orchestrators/F","Method":"POST","Body":"12345"}}}`,
			413, CodeRequestTooLarge, "4 bytes"},
		{"panic", "Panics", `{"Data":{"req":{"Url":"http://h/api/panics","Method":"GET"}}}`, 500, CodeInternal, `"Panics" failed`},
		{"unbound", "Unbound", `{"Data":{"req":{"Url":"http://h/api/unbound","Method":"GET"}}}`, 501, CodeNotImplemented, `"Unbound"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, out := decodeReply(t, invoke(app, tt.function, tt.payload), "res")
			if out.StatusCode != tt.wantStatus {
				t.Fatalf("http output = %+v, want status %d", out, tt.wantStatus)
			}
			assertErrorBody(t, out.Headers["Content-Type"], []byte(out.Body), tt.wantCode, tt.wantMsg)
		})
	}
}

func TestHostResponseShape(t *testing.T) {
	app := newTestApp(t, `{}`, Options{})
	_, out := decodeReply(t, invoke(app, "Binary", `{"Data":{"req":{"Url":"http://h/api/binary","Method":"GET"}}}`), "res")
	want := hostHTTPOut{StatusCode: 202, Body: "plain text", Headers: map[string]string{"X-A": "1", "Content-Type": "text/plain; charset=utf-8"}}
	if fmt.Sprint(out) != fmt.Sprint(want) {
		t.Fatalf("http output = %+v, want %+v", out, want)
	}
	_, out = decodeReply(t, invoke(app, "Nil", `{"Data":{"req":{"Url":"http://h/api/nil","Method":"GET"}}}`), "res")
	if out.StatusCode != 200 || out.Body != "" || len(out.Headers) != 0 {
		t.Fatalf("nil response output = %+v", out)
	}
}

func TestHostUnknownFunction(t *testing.T) {
	app := newTestApp(t, `{}`, Options{})
	rec := invoke(app, "Nope", referencePayload)
	if rec.Code != 404 {
		t.Fatalf("status = %d, want 404; %s", rec.Code, rec.Body)
	}
	assertErrorBody(t, rec.Header().Get("Content-Type"), rec.Body.Bytes(), CodeNotFound, `no function "Nope"`)
}

func TestHostReadiness(t *testing.T) {
	app := newTestApp(t, `{}`, Options{})
	rec := httptest.NewRecorder()
	app.HostHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json; charset=utf-8" || rec.Body.String() != `{"status":"ready"}` {
		t.Fatalf("readiness = %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

func TestHostForwardedRequests(t *testing.T) {
	for _, hostJSON := range []string{`{}`, `{"customHandler":{"enableForwardingHttpRequest":true}}`} {
		app := newTestApp(t, hostJSON, Options{})
		// The forwarded shape: original method and /api/... path, raw body.
		req := httptest.NewRequest("POST", "http://127.0.0.1:5000/api/orchestrators/Flow?x=1", strings.NewReader("raw"))
		req.Header.Set(HeaderInvocationID, "11111111-2222-3333-4444-555555555555")
		rec := httptest.NewRecorder()
		app.HostHandler().ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%s: status = %d; %s", hostJSON, rec.Code, rec.Body)
		}
		var e echoed
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if e.Body != "raw" || e.Params["functionName"] != "Flow" || e.InvID != "11111111-2222-3333-4444-555555555555" {
			t.Errorf("%s: echo = %+v", hostJSON, e)
		}
	}
	// With forwarding on, an http-only function is never invoked by name:
	// POST /Start is routed (and has no route).
	app := newTestApp(t, `{"customHandler":{"enableForwardingHttpRequest":true}}`, Options{})
	rec := invoke(app, "Start", referencePayload)
	if rec.Code != 404 {
		t.Fatalf("POST /Start with forwarding: status %d; %s", rec.Code, rec.Body)
	}
}

// A forwarded request that names no host gets the app's public host under
// the Functions host, else the address the handler listens on.
func TestHostForwardedRequestWithoutHost(t *testing.T) {
	tests := []struct {
		publicHost string
		want       func(addr string) string
	}{
		{"example.azurewebsites.net", func(string) string { return "example.azurewebsites.net" }},
		{"", func(addr string) string { return addr }},
	}
	for _, tc := range tests {
		t.Setenv(EnvWebsiteHostname, "")
		app := newTestApp(t, `{"customHandler":{"enableForwardingHttpRequest":true}}`, Options{PublicHost: tc.publicHost})
		srv := httptest.NewServer(app.HostHandler())
		addr := strings.TrimPrefix(srv.URL, "http://")
		e := http10(t, addr, "/api/instances/7")
		srv.Close()
		if want := "http://" + tc.want(addr) + "/api/instances/7"; e.URL != want || e.Escaped != "/api/instances/7" {
			t.Errorf("public host %q: url %q, escaped %q; want %q", tc.publicHost, e.URL, e.Escaped, want)
		}
	}
}

func TestPublicHostName(t *testing.T) {
	t.Setenv(EnvWebsiteHostname, "0.0.0.0:8080")
	for _, tc := range []struct{ in, want string }{
		{"", "localhost:8080"}, // from WEBSITE_HOSTNAME
		{"myapp.azurewebsites.net", "myapp.azurewebsites.net"},
		{"localhost:7071", "localhost:7071"},
		{"[::]:7071", "localhost:7071"},
		{"[::1]:7071", "[::1]:7071"},
		{"::1", "[::1]"},
		{"0.0.0.0", "localhost"},
	} {
		if got := publicHostName(tc.in); got != tc.want {
			t.Errorf("publicHostName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	t.Setenv(EnvWebsiteHostname, "")
	if got := publicHostName(""); got != "" {
		t.Errorf("without WEBSITE_HOSTNAME: %q", got)
	}
}

func TestHostQueueInvocation(t *testing.T) {
	app := newTestApp(t, `{}`, Options{})
	type seen struct {
		msg, dequeue, id, op, method string
		inserted                     time.Time
		trigger                      string
	}
	got := make(chan seen, 1)
	must(t, app.HandleInvocation("QueueJob", func(ctx context.Context, inv *Invocation) (*InvocationResult, error) {
		var s seen
		s.msg, _ = inv.DataString("msg")
		s.dequeue, _ = inv.MetadataString("dequeuecount")
		s.id, _ = inv.MetadataString("Id")
		s.op, _ = inv.MetadataString("op")
		var err error
		if s.inserted, err = inv.MetadataTime("InsertionTime"); err != nil {
			return nil, err
		}
		var sys struct{ MethodName string }
		if err := json.Unmarshal(inv.Metadata["sys"], &sys); err != nil {
			return nil, err
		}
		s.method = sys.MethodName
		tv, _ := inv.TriggerValue()
		s.trigger = string(tv)
		got <- s
		if InvocationID(ctx) != inv.InvocationID {
			return nil, errors.New("invocation id not in context")
		}
		return &InvocationResult{Outputs: map[string]any{"next": map[string]string{"op": "done"}}, Logs: []string{"handled"}}, nil
	}))
	payload := `{"Data":{"msg":"\"{\\\"op\\\":\\\"run\\\"}\""},
 "Metadata":{"DequeueCount":"1","Id":"\"5b7c1c1e\"","PopReceipt":"\"AgAAAAMAAAAAAAAA\"",
  "InsertionTime":"2025-01-01T10:00:00+00:00","ExpirationTime":"2025-01-08T10:00:00","NextVisibleTime":"2025-01-01T10:10:00+00:00",
  "op":"\"run\"","sys":{"MethodName":"QueueJob","UtcNow":"2025-01-01T10:00:00.1234567Z","RandGuid":"0f8fad5b-d9cb-469f-a165-70867728950e"}}}`
	rec := invoke(app, "QueueJob", payload)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("reply = %d %s", rec.Code, rec.Body)
	}
	if rec.Body.String() != `{"Outputs":{"next":{"op":"done"}},"Logs":["handled"],"ReturnValue":null}` {
		t.Fatalf("reply body = %s", rec.Body)
	}
	s := <-got
	want := seen{msg: `{"op":"run"}`, dequeue: "1", id: "5b7c1c1e", op: "run", method: "QueueJob",
		inserted: time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC), trigger: `"\"{\\\"op\\\":\\\"run\\\"}\""`}
	if s != want {
		t.Fatalf("function saw %+v, want %+v", s, want)
	}
}

func TestHostOtherInvocationFailures(t *testing.T) {
	app := newTestApp(t, `{}`, Options{})
	rec := invoke(app, "QueueJob", `{"Data":{"msg":"\"x\""},"Metadata":{}}`)
	if rec.Code != 501 {
		t.Fatalf("unbound queue function: %d %s", rec.Code, rec.Body)
	}
	assertErrorBody(t, rec.Header().Get("Content-Type"), rec.Body.Bytes(), CodeNotImplemented, `"QueueJob"`)

	must(t, app.HandleInvocation("QueueJob", func(context.Context, *Invocation) (*InvocationResult, error) {
		return nil, errors.New("storage unavailable")
	}))
	rec = invoke(app, "QueueJob", `{"Data":{"msg":"\"x\""},"Metadata":{}}`)
	if rec.Code != 500 {
		t.Fatalf("failing queue function: %d %s", rec.Code, rec.Body)
	}
	assertErrorBody(t, rec.Header().Get("Content-Type"), rec.Body.Bytes(), CodeInternal, "storage unavailable")

	rec = invoke(app, "QueueJob", `not json`)
	if rec.Code != 400 {
		t.Fatalf("undecodable queue payload: %d %s", rec.Code, rec.Body)
	}
	assertErrorBody(t, rec.Header().Get("Content-Type"), rec.Body.Bytes(), CodeInvalidInvocation, "could not decode")
}

func TestDecodeString(t *testing.T) {
	tests := []struct{ raw, want string }{
		{`"\"hello\""`, "hello"},               // host: double-encoded string
		{`"hello"`, "hello"},                   // docs: single-encoded
		{`"1"`, "1"},                           // host: number as JSON text
		{`1`, "1"},                             // docs: bare number
		{`"{\"op\":\"run\"}"`, `{"op":"run"}`}, // JSON message text
		{`"\"{\\\"op\\\":\\\"run\\\"}\""`, `{"op":"run"}`},
		{`"null"`, "null"},
		{`null`, ""},
		{``, ""},
		{`{"a":1}`, `{"a":1}`},
		{`"aGVsbG8="`, "aGVsbG8="}, // base64 stays base64
	}
	for _, tt := range tests {
		if got := DecodeString(json.RawMessage(tt.raw)); got != tt.want {
			t.Errorf("DecodeString(%s) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}
