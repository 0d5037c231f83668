package handler

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// echo is an HTTPFunc that reports what it received.
func echo(ctx context.Context, req *Request) *Response {
	return JSON(http.StatusOK, map[string]any{
		"method":  req.Method,
		"url":     req.URL.String(),
		"escaped": req.EscapedPath,
		"query":   req.Query,
		"params":  req.Params,
		"host":    req.Header.Get("Host"),
		"ctype":   req.Header.Get("Content-Type"),
		"body":    string(req.Body),
		"nobody":  req.Body == nil,
		"invId":   InvocationID(ctx),
	})
}

type echoed struct {
	Method  string              `json:"method"`
	URL     string              `json:"url"`
	Escaped string              `json:"escaped"`
	Query   map[string][]string `json:"query"`
	Params  map[string]string   `json:"params"`
	Host    string              `json:"host"`
	CType   string              `json:"ctype"`
	Body    string              `json:"body"`
	NoBody  bool                `json:"nobody"`
	InvID   string              `json:"invId"`
}

// newTestApp builds an App over a standard set of functions.
func newTestApp(t *testing.T, hostJSON string, opts Options) *App {
	t.Helper()
	root := writeApp(t, hostJSON, map[string]string{
		"Start":    httpFunctionJSON("orchestrators/{functionName}/{instanceId?}", `["post"]`, "res"),
		"Status":   httpFunctionJSON("instances/{id}", `["get","delete"]`, "res"),
		"Files":    httpFunctionJSON("files/{*path}", `[]`, "res"),
		"Plain":    `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"$return"}]}`,
		"Panics":   httpFunctionJSON("panics", `[]`, "res"),
		"Nil":      httpFunctionJSON("nil", `[]`, "res"),
		"Unbound":  httpFunctionJSON("unbound", `[]`, "res"),
		"Binary":   httpFunctionJSON("binary", `[]`, "res"),
		"QueueJob": `{"bindings":[{"type":"queueTrigger","direction":"in","name":"msg","queueName":"jobs"},{"type":"queue","direction":"out","name":"next","queueName":"jobs2"}]}`,
	})
	opts.AppRoot = root
	if opts.Logger == nil {
		opts.Logger, _ = testLogger()
	}
	app, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, name := range []string{"Start", "Status", "Files", "Plain"} {
		if err := app.HandleHTTP(name, echo); err != nil {
			t.Fatal(err)
		}
	}
	must(t, app.HandleHTTP("Panics", func(context.Context, *Request) *Response { panic("boom") }))
	must(t, app.HandleHTTP("Nil", func(context.Context, *Request) *Response { return nil }))
	must(t, app.HandleHTTP("Binary", func(context.Context, *Request) *Response {
		return &Response{StatusCode: http.StatusAccepted, Header: http.Header{"X-A": {"1", "2"}}, Body: []byte("plain text")}
	}))
	return app
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestStandaloneRouting(t *testing.T) {
	app := newTestApp(t, `{"version":"2.0"}`, Options{MaxRequestBodyBytes: 16})
	srv := httptest.NewServer(app.StandaloneHandler())
	defer srv.Close()

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		header     map[string]string
		wantStatus int
		wantCode   string // error code for error responses
		wantMsg    string // substring of the error message
		check      func(t *testing.T, e echoed, resp *http.Response)
	}{
		{name: "params and query", method: "POST", path: "/api/orchestrators/Flow/abc?x=1&x=2&code=k", body: `{"a":1}`,
			header: map[string]string{"Content-Type": "application/json"}, wantStatus: 200,
			check: func(t *testing.T, e echoed, _ *http.Response) {
				if e.Params["functionName"] != "Flow" || e.Params["instanceId"] != "abc" {
					t.Errorf("params = %v", e.Params)
				}
				if strings.Join(e.Query["x"], ",") != "1,2" || e.Query["code"][0] != "k" {
					t.Errorf("query = %v", e.Query)
				}
				if e.Body != `{"a":1}` || e.CType != "application/json" || e.Method != "POST" {
					t.Errorf("echo = %+v", e)
				}
				if !strings.HasPrefix(e.URL, "http://127.0.0.1:") || !strings.HasSuffix(e.URL, "/api/orchestrators/Flow/abc?x=1&x=2&code=k") {
					t.Errorf("url = %q", e.URL)
				}
			}},
		{name: "optional param absent, case-insensitive prefix and literal", method: "POST", path: "/API/Orchestrators/Flow", wantStatus: 200,
			check: func(t *testing.T, e echoed, _ *http.Response) {
				if _, ok := e.Params["instanceId"]; ok || e.Params["functionName"] != "Flow" {
					t.Errorf("params = %v", e.Params)
				}
				if !e.NoBody {
					t.Errorf("body should be nil, got %q", e.Body)
				}
			}},
		{name: "percent-decoded segment", method: "GET", path: "/api/instances/a%20b%2Fc", wantStatus: 200,
			check: func(t *testing.T, e echoed, _ *http.Response) {
				if e.Params["id"] != "a b/c" {
					t.Errorf("id = %q", e.Params["id"])
				}
			}},
		{name: "each segment decoded once, escaped path kept", method: "PUT", path: "/api/files/a%2Fb/pct%2541", wantStatus: 200,
			check: func(t *testing.T, e echoed, _ *http.Response) {
				if e.Params["path"] != "a/b/pct%41" || e.Escaped != "/api/files/a%2Fb/pct%2541" {
					t.Errorf("path = %q, escaped = %q", e.Params["path"], e.Escaped)
				}
			}},
		{name: "escaped prefix", method: "GET", path: "/%61pi/plain", wantStatus: 200},
		{name: "catch-all", method: "PUT", path: "/api/files/dir/sub/file%20name.txt", wantStatus: 200,
			check: func(t *testing.T, e echoed, _ *http.Response) {
				if e.Params["path"] != "dir/sub/file name.txt" {
					t.Errorf("path = %q", e.Params["path"])
				}
			}},
		{name: "empty catch-all", method: "GET", path: "/api/files", wantStatus: 200,
			check: func(t *testing.T, e echoed, _ *http.Response) {
				if _, ok := e.Params["path"]; ok {
					t.Errorf("params = %v", e.Params)
				}
			}},
		{name: "default route is the function name", method: "PATCH", path: "/api/plain", wantStatus: 200},
		{name: "public URL from X-Forwarded-Proto and Host", method: "GET", path: "/api/instances/1",
			header: map[string]string{"X-Forwarded-Proto": "https, http", "Host": "example.org"}, wantStatus: 200,
			check: func(t *testing.T, e echoed, _ *http.Response) {
				if e.URL != "https://example.org/api/instances/1" || e.Host != "example.org" {
					t.Errorf("url = %q host = %q", e.URL, e.Host)
				}
			}},
		{name: "unknown route", method: "GET", path: "/api/nothing/here", wantStatus: 404, wantCode: CodeNotFound, wantMsg: "GET /api/nothing/here"},
		{name: "outside prefix", method: "GET", path: "/instances/1", wantStatus: 404, wantCode: CodeNotFound, wantMsg: "/instances/1"},
		{name: "wrong method", method: "PUT", path: "/api/instances/1", wantStatus: 405, wantCode: CodeMethodNotAllowed, wantMsg: "allowed: GET, DELETE",
			check: func(t *testing.T, _ echoed, resp *http.Response) {
				if resp.Header.Get("Allow") != "GET, DELETE" {
					t.Errorf("Allow = %q", resp.Header.Get("Allow"))
				}
			}},
		{name: "body too large", method: "POST", path: "/api/orchestrators/Flow", body: strings.Repeat("x", 17),
			wantStatus: 413, wantCode: CodeRequestTooLarge, wantMsg: "16 bytes"},
		{name: "body at the limit", method: "POST", path: "/api/orchestrators/Flow", body: strings.Repeat("x", 16), wantStatus: 200},
		{name: "panic", method: "GET", path: "/api/panics", wantStatus: 500, wantCode: CodeInternal, wantMsg: `"Panics"`},
		{name: "unbound function", method: "GET", path: "/api/unbound", wantStatus: 501, wantCode: CodeNotImplemented, wantMsg: `"Unbound"`},
		{name: "nil response", method: "GET", path: "/api/nil", wantStatus: 200,
			check: func(t *testing.T, _ echoed, resp *http.Response) {
				if resp.ContentLength != 0 {
					t.Errorf("content length = %d", resp.ContentLength)
				}
			}},
		{name: "default content type and multi-value header", method: "GET", path: "/api/binary", wantStatus: 202,
			check: func(t *testing.T, _ echoed, resp *http.Response) {
				if resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || strings.Join(resp.Header.Values("X-A"), ",") != "1,2" {
					t.Errorf("headers = %v", resp.Header)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				if k == "Host" {
					req.Host = v
					continue
				}
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, raw)
			}
			if tt.wantCode != "" {
				assertErrorBody(t, resp.Header.Get("Content-Type"), raw, tt.wantCode, tt.wantMsg)
			}
			if tt.check != nil {
				var e echoed
				if resp.StatusCode == 200 && len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
					if err := json.Unmarshal(raw, &e); err != nil {
						t.Fatalf("decode echo: %v; %s", err, raw)
					}
				}
				tt.check(t, e, resp)
			}
		})
	}
}

// assertErrorBody checks a JSON ErrorBody.
func assertErrorBody(t *testing.T, contentType string, raw []byte, code, msg string) {
	t.Helper()
	if contentType != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", contentType)
	}
	var eb ErrorBody
	if err := json.Unmarshal(raw, &eb); err != nil {
		t.Fatalf("error body %s: %v", raw, err)
	}
	if eb.Error.Code != code || !strings.Contains(eb.Error.Message, msg) {
		t.Errorf("error = %+v, want code %q and message containing %q", eb.Error, code, msg)
	}
}

func TestStandaloneChunkedBodyTooLarge(t *testing.T) {
	app := newTestApp(t, `{}`, Options{MaxRequestBodyBytes: 4})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/orchestrators/Flow", io.NopCloser(strings.NewReader("12345")))
	req.ContentLength = -1 // chunked: the limit applies while reading
	app.StandaloneHandler().ServeHTTP(rec, req)
	if rec.Code != 413 {
		t.Fatalf("status = %d; %s", rec.Code, rec.Body)
	}
	assertErrorBody(t, rec.Header().Get("Content-Type"), rec.Body.Bytes(), CodeRequestTooLarge, "4 bytes")
}

func TestStandalonePanicIsLogged(t *testing.T) {
	logger, logs := testLogger()
	app := newTestApp(t, `{}`, Options{Logger: logger})
	rec := httptest.NewRecorder()
	app.StandaloneHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/panics", nil))
	if rec.Code != 500 {
		t.Fatalf("status = %d", rec.Code)
	}
	if out := logs.String(); !strings.Contains(out, "function panicked") || !strings.Contains(out, "panic=boom") || !strings.Contains(out, "function=Panics") {
		t.Fatalf("log does not record the panic:\n%s", out)
	}
}

func TestJSONAndError(t *testing.T) {
	r := JSON(201, map[string]string{"a": "<b>"})
	if r.StatusCode != 201 || string(r.Body) != `{"a":"<b>"}` || r.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("JSON = %d %q %v", r.StatusCode, r.Body, r.Header)
	}
	r = JSON(200, func() {})
	if r.StatusCode != 500 || !strings.Contains(string(r.Body), `"code":"InternalError"`) {
		t.Errorf("JSON(func) = %d %s", r.StatusCode, r.Body)
	}
	r = Error(409, "Conflict", "instance exists")
	if r.StatusCode != 409 || string(r.Body) != `{"error":{"code":"Conflict","message":"instance exists"}}` {
		t.Errorf("Error = %d %s", r.StatusCode, r.Body)
	}
}

// http10 sends an HTTP/1.0 request without a Host header to addr and
// decodes the echo.
func http10(t *testing.T, addr, path string) echoed {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	var e echoed
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("decode echo: %v; %s", err, raw)
	}
	return e
}

// A request that names no host gets the address the server listens on,
// never "http:///".
func TestStandaloneRequestWithoutHost(t *testing.T) {
	app := newTestApp(t, `{}`, Options{PublicHost: "ignored-standalone:1"})
	srv := httptest.NewServer(app.StandaloneHandler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	e := http10(t, addr, "/api/instances/a%20b?x=1")
	if e.URL != "http://"+addr+"/api/instances/a%20b?x=1" || e.Host != "" || e.Params["id"] != "a b" {
		t.Fatalf("echo = %+v", e)
	}
}
