package hostemulator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// Function declarations of the test handler's functions.
var (
	echoJSON = `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous",
		"route":"echo/{id:int}/{*rest}","methods":["get","post"]},{"type":"http","direction":"out","name":"res"}]}`
	envJSON     = `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"env"},{"type":"http","direction":"out","name":"$return"}]}`
	crashJSON   = `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"crash/{code:int}"},{"type":"http","direction":"out","name":"res"}]}`
	slowJSON    = `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"slow"},{"type":"http","direction":"out","name":"res"}]}`
	workJSON    = `{"bindings":[{"type":"queueTrigger","direction":"in","name":"msg","queueName":"work"},{"type":"queue","direction":"out","name":"out","queueName":"done"}]}`
	tickJSON    = `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 */5 * * * *"}]}`
	rawHTTP     = `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous"},{"type":"http","direction":"out","name":"res"}]}`
	headersJSON = `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous","route":"headers/{name}/{opt?}"},
		{"type":"http","direction":"out","name":"res"}]}`
	base64OutJSON = `{"bindings":[{"type":"queueTrigger","direction":"in","name":"msg","queueName":"b"},{"type":"queue","direction":"out","name":"outQ","queueName":"c"}]}`
)

// hostJSON returns a host.json starting the test handler with arguments.
func hostJSON(args ...string) string {
	a, _ := json.Marshal(args)
	return `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler","arguments":` + string(a) + `}}}`
}

// newAppRoot writes an app root whose "handler" is the test handler binary.
func newAppRoot(t *testing.T, host string, functions map[string]string, localSettings string) string {
	t.Helper()
	root := t.TempDir()
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "host.json"), host)
	for name, content := range functions {
		write(filepath.Join(root, name, "function.json"), content)
	}
	if localSettings != "" {
		write(filepath.Join(root, "local.settings.json"), localSettings)
	}
	if err := os.Symlink(testHandlerBin, filepath.Join(root, "handler")); err != nil {
		t.Fatal(err)
	}
	return root
}

// startHost starts the emulator and stops it when the test ends, printing
// the captured logs if the test failed.
func startHost(t *testing.T, root string, opts Options) *Host {
	t.Helper()
	opts.AppRoot = root
	if opts.ReadinessTimeout == 0 {
		opts.ReadinessTimeout = 20 * time.Second
	}
	h, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		_ = h.Stop()
		if t.Failed() {
			for _, l := range h.Logs() {
				t.Log(l)
			}
		}
	})
	return h
}

// do sends a request to the public listener and returns status, headers and body.
func do(t *testing.T, method, url, contentType, body string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func assertNoInvocationErrors(t *testing.T, h *Host) {
	t.Helper()
	for _, e := range h.InvocationErrors() {
		t.Errorf("unexpected invocation error: %v", &e)
	}
}

type echoReply struct {
	Method       string              `json:"method"`
	URL          string              `json:"url"`
	Query        map[string][]string `json:"query"`
	Params       map[string]string   `json:"params"`
	ContentType  string              `json:"contentType"`
	Body         string              `json:"body"`
	InvocationID string              `json:"invocationId"`
}

func TestHTTPRoundTrip(t *testing.T) {
	root := newAppRoot(t, hostJSON(), map[string]string{"Echo": echoJSON}, "")
	h := startHost(t, root, Options{})

	url := h.URL() + "/api/echo/42/a/b%20c?x=1&x=2&code=secret"
	status, header, body := do(t, "POST", url, "application/json", `{"op":"run"}`)
	if status != 200 || header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("status %d, headers %v, body %s", status, header, body)
	}
	var e echoReply
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if e.Method != "POST" || e.URL != url || e.Params["id"] != "42" || e.Params["rest"] != "a/b c" ||
		strings.Join(e.Query["x"], ",") != "1,2" || e.Query["code"][0] != "secret" ||
		e.Body != `{"op":"run"}` || e.ContentType != "application/json" || !guidRE.MatchString(e.InvocationID) {
		t.Errorf("echo = %+v", e)
	}

	// Unknown routes, constraint mismatches and wrong methods: the host's bare 404.
	for _, tc := range []struct{ method, path string }{{"GET", "/api/nothing"}, {"GET", "/api/echo/x/y"}, {"DELETE", "/api/echo/1/y"}, {"GET", "/echo/1/y"}} {
		if status, _, body := do(t, tc.method, h.URL()+tc.path, "", ""); status != 404 || len(body) != 0 {
			t.Errorf("%s %s = %d %q, want bare 404", tc.method, tc.path, status, body)
		}
	}
	assertNoInvocationErrors(t, h)
}

func TestInvocationRequestShape(t *testing.T) {
	root := newAppRoot(t, hostJSON("-raw"), map[string]string{"Headers": headersJSON}, "")
	h := startHost(t, root, Options{})

	var seenIDs []string
	for i := 0; i < 2; i++ {
		status, _, body := do(t, "POST", h.URL()+"/API/Headers/n%201?q=1&q=2&code=k", "application/json", `{"a":1,"flag":true,"obj":{"b":2},"list":[1]}`)
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		var r struct {
			Method           string              `json:"method"`
			Path             string              `json:"path"`
			Headers          map[string][]string `json:"headers"`
			ContentLength    int64               `json:"contentLength"`
			TransferEncoding []string            `json:"transferEncoding"`
			Payload          struct {
				Data     map[string]json.RawMessage `json:"Data"`
				Metadata map[string]json.RawMessage `json:"Metadata"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if r.Method != "POST" || r.Path != "/Headers" || r.ContentLength != -1 || strings.Join(r.TransferEncoding, ",") != "chunked" {
			t.Errorf("request line/framing = %s %s length %d encoding %v", r.Method, r.Path, r.ContentLength, r.TransferEncoding)
		}
		id := first(r.Headers["X-Azure-Functions-Invocationid"])
		if !guidRE.MatchString(id) || first(r.Headers["X-Azure-Functions-Hostversion"]) != "4.1037.0.0" ||
			first(r.Headers["User-Agent"]) != "Azure-Functions-Host/4.1037.0.0" ||
			first(r.Headers["Content-Type"]) != "application/json; charset=utf-8" {
			t.Errorf("headers = %v", r.Headers)
		}
		seenIDs = append(seenIDs, id)

		var req struct {
			URL        string              `json:"Url"`
			Method     string              `json:"Method"`
			Query      map[string]string   `json:"Query"`
			Headers    map[string][]string `json:"Headers"`
			Params     map[string]*string  `json:"Params"`
			Identities []map[string]any    `json:"Identities"`
			Body       *string             `json:"Body"`
		}
		if err := json.Unmarshal(r.Payload.Data["req"], &req); err != nil {
			t.Fatalf("Data.req: %v", err)
		}
		if req.URL != h.URL()+"/API/Headers/n%201?q=1&q=2&code=k" || req.Method != "POST" || req.Query["q"] != "1,2" || req.Query["code"] != "k" ||
			first(req.Headers["Content-Type"]) != "application/json" || first(req.Headers["Host"]) != strings.TrimPrefix(h.URL(), "http://") ||
			req.Params["name"] == nil || *req.Params["name"] != "n 1" || req.Params["opt"] != nil || len(req.Identities) != 1 ||
			req.Body == nil || *req.Body != `{"a":1,"flag":true,"obj":{"b":2},"list":[1]}` {
			t.Errorf("Data.req = %s", r.Payload.Data["req"])
		}
		md := r.Payload.Metadata
		want := map[string]string{
			"q": `"\"1,2\""`, "name": `"\"n 1\""`, "a": `"\"1\""`, "flag": `"\"True\""`, "obj": `{"b":2}`,
			"Query": `{"code":"k","q":"1,2"}`,
		}
		for k, v := range want {
			if string(md[k]) != v {
				t.Errorf("Metadata[%s] = %s, want %s", k, md[k], v)
			}
		}
		for _, k := range []string{"code", "list", "opt", "req"} {
			if _, ok := md[k]; ok {
				t.Errorf("Metadata has %q: %s", k, md[k])
			}
		}
		var sys struct{ MethodName, UtcNow, RandGuid string }
		if err := json.Unmarshal(md["sys"], &sys); err != nil || sys.MethodName != "Headers" || !guidRE.MatchString(sys.RandGuid) ||
			!regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`).MatchString(sys.UtcNow) {
			t.Errorf("sys = %s", md["sys"])
		}
		var headers map[string]string
		if err := json.Unmarshal(md["Headers"], &headers); err != nil || headers["Content-Type"] != "application/json" {
			t.Errorf("Metadata.Headers = %s", md["Headers"])
		}
	}
	if seenIDs[0] == seenIDs[1] {
		t.Errorf("invocation IDs repeat: %v", seenIDs)
	}

	// A chunked request (no Content-Length) carries no Body.
	req, _ := http.NewRequest("POST", h.URL()+"/api/headers/x", io.NopCloser(strings.NewReader("chunked body")))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), `\"Body\"`) {
		t.Errorf("chunked request produced a Body: %s", body)
	}
	assertNoInvocationErrors(t, h)
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func TestEnvironmentArgumentsAndWorkingDirectory(t *testing.T) {
	host := `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler",
		"arguments":["-greeting","%GREETING%-%FUNCTIONS_CUSTOMHANDLER_PORT%","%NOT_SET_ANYWHERE%","extra arg"],"workingDirectory":"work"}}}`
	root := newAppRoot(t, host, map[string]string{"Env": envJSON},
		`{"IsEncrypted":false,"Values":{"FROM_SETTINGS":"settings","OVERRIDDEN":"settings","SHELL_WINS":"settings","GREETING":"hi","FUNCTIONS_WORKER_RUNTIME":"custom"}}`)
	if err := os.Mkdir(filepath.Join(root, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHELL_WINS", "shell")
	h := startHost(t, root, Options{Env: []string{"OVERRIDDEN=option", "FUNCTIONS_CUSTOMHANDLER_PORT=1"}})

	status, _, body := do(t, "GET", h.URL()+"/api/env", "", "")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	var r struct {
		Env      map[string]string `json:"env"`
		Greeting string            `json:"greeting"`
		Args     []string          `json:"args"`
		Cwd      string            `json:"cwd"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	port := h.HandlerURL()[strings.LastIndex(h.HandlerURL(), ":")+1:]
	rootAbs, _ := filepath.EvalSymlinks(root)
	want := map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT": port,
		"FUNCTIONS_HTTPWORKER_PORT":    port,
		"FUNCTIONS_APP_ROOT_PATH":      root,
		"AzureWebJobsScriptRoot":       root,
		"AZURE_FUNCTIONS_ENVIRONMENT":  "Development",
		"FROM_SETTINGS":                "settings",
		"OVERRIDDEN":                   "option",
		"SHELL_WINS":                   "shell",
	}
	for k, v := range want {
		if r.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, r.Env[k], v)
		}
	}
	if !guidRE.MatchString(r.Env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"]) || r.Env["FUNCTIONS_HTTPWORKER_ID"] != r.Env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"] {
		t.Errorf("worker IDs = %q, %q", r.Env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"], r.Env["FUNCTIONS_HTTPWORKER_ID"])
	}
	if r.Greeting != "hi-"+port {
		t.Errorf("greeting = %q", r.Greeting)
	}
	if strings.Join(r.Args, "|") != "extra|arg" {
		t.Errorf("positional args = %q (the host joins arguments into one command line)", r.Args)
	}
	if cwd, _ := filepath.EvalSymlinks(r.Cwd); cwd != filepath.Join(rootAbs, "work") {
		t.Errorf("cwd = %q", r.Cwd)
	}
	if _, err := h.WaitForLog(context.Background(), func(l LogLine) bool {
		return l.Source == SourceHost && l.Level == slog.LevelWarn && strings.Contains(l.Text, "%NOT_SET_ANYWHERE% is not set")
	}); err != nil {
		t.Error(err)
	}
}

func TestRestartAfterKill(t *testing.T) {
	root := newAppRoot(t, hostJSON(), map[string]string{"Echo": echoJSON}, "")
	h := startHost(t, root, Options{})
	pid := h.PID()
	if status, _, body := do(t, "GET", h.URL()+"/api/echo/1/x", "", ""); status != 200 {
		t.Fatalf("before kill: %d %s", status, body)
	}
	if err := h.KillHandler(); err != nil {
		t.Fatal(err)
	}
	status, _, body := do(t, "GET", h.URL()+"/api/echo/2/y", "", "")
	if status != 200 {
		t.Fatalf("after kill: %d %s", status, body)
	}
	if h.Restarts() != 1 || h.PID() == pid || h.PID() == 0 {
		t.Errorf("Restarts = %d, pid %d -> %d", h.Restarts(), pid, h.PID())
	}
	assertNoInvocationErrors(t, h)
	if _, err := h.WaitForLog(context.Background(), func(l LogLine) bool {
		return l.Source == SourceHost && strings.Contains(l.Text, "pid "+strconv.Itoa(pid)+" exited with code")
	}); err != nil {
		t.Error(err)
	}
}

func TestRestartPolicy(t *testing.T) {
	tests := []struct {
		name         string
		exitCode     int
		crashes      int
		wantRestarts int
		wantStopped  bool
	}{
		{"non-zero exit restarts, the third error stops the host", 3, 3, 2, true},
		{"exit 200 restarts without counting an error", 200, 4, 4, false},
		{"exit 0 is not restarted", 0, 1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newAppRoot(t, hostJSON(), map[string]string{"Echo": echoJSON, "Crash": crashJSON}, "")
			h := startHost(t, root, Options{})
			for i := 0; i < tt.crashes; i++ {
				if err := h.WaitReady(context.Background()); err != nil {
					t.Fatal(err)
				}
				pid := h.PID()
				if status, _, body := do(t, "GET", h.URL()+"/api/crash/"+strconv.Itoa(tt.exitCode), "", ""); status != 500 || len(body) != 0 {
					t.Fatalf("crash %d: %d %q, want bare 500", i, status, body)
				}
				// The reply fails as the process dies; wait until the host
				// has seen the exit before sending the next request.
				exited := "pid " + strconv.Itoa(pid) + " exited with code " + strconv.Itoa(tt.exitCode)
				if _, err := h.WaitForLog(context.Background(), func(l LogLine) bool { return strings.Contains(l.Text, exited) }); err != nil {
					t.Fatal(err)
				}
			}
			if tt.wantStopped {
				<-h.Done()
				if err := h.Err(); err == nil || !strings.Contains(err.Error(), "exceeded http worker restart retry count") {
					t.Errorf("Err = %v", err)
				}
			} else {
				// The next request waits for the restarted handler, or fails
				// at once when the handler is not restarted.
				status, _, _ := do(t, "GET", h.URL()+"/api/echo/1/x", "", "")
				wantStatus := 200
				if tt.exitCode == 0 {
					wantStatus = 500
				}
				if status != wantStatus {
					t.Errorf("status after crashes = %d, want %d", status, wantStatus)
				}
				if h.Err() != nil {
					t.Errorf("Err = %v", h.Err())
				}
			}
			if h.Restarts() != tt.wantRestarts {
				t.Errorf("Restarts = %d, want %d", h.Restarts(), tt.wantRestarts)
			}
			errs := h.InvocationErrors()
			for _, e := range errs[:tt.crashes] {
				if e.Kind != KindTransport || e.FunctionName != "Crash" || !e.Failed {
					t.Errorf("crash invocation error = %v", &e)
				}
			}
			if tt.exitCode == 0 {
				if len(errs) != 2 || errs[1].Kind != KindNotReady || !errors.Is(errs[1].Err, ErrHandlerExited) {
					t.Errorf("errors after exit 0 = %v", errs)
				}
			}
		})
	}
}

func TestStrictReplyChecks(t *testing.T) {
	fns := map[string]string{"Base64Out": base64OutJSON}
	names := []string{"TextPlain", "EmptyBody", "NullBody", "Status500", "NotJSON", "BadHTTPOutput"}
	for _, n := range names {
		fns[n] = rawHTTP
	}
	root := newAppRoot(t, hostJSON("-raw"), fns, "")
	h := startHost(t, root, Options{})
	tests := []struct {
		function string
		kind     ErrorKind
		msg      string
	}{
		{"TextPlain", KindContentType, `"text/plain; charset=utf-8" is not application/json`},
		{"EmptyBody", KindEmptyBody, "would wait until the function timeout"},
		{"NullBody", KindEmptyBody, `"null"`},
		{"Status500", KindStatus, "HTTP 500"},
		{"NotJSON", KindInvalidJSON, "not a JSON object"},
		{"BadHTTPOutput", KindHTTPOutput, `http output "res": value is a string that is not a JSON object`},
	}
	for i, tt := range tests {
		t.Run(tt.function, func(t *testing.T) {
			status, _, body := do(t, "GET", h.URL()+"/api/"+tt.function, "", "")
			if status != 500 || len(body) != 0 {
				t.Fatalf("status %d %q, want bare 500", status, body)
			}
			errs := h.InvocationErrors()
			if len(errs) != i+1 {
				t.Fatalf("%d invocation errors, want %d: %v", len(errs), i+1, errs)
			}
			e := errs[i]
			if e.Kind != tt.kind || e.FunctionName != tt.function || !e.Failed || !guidRE.MatchString(e.InvocationID) ||
				!strings.Contains(e.Err.Error(), tt.msg) {
				t.Errorf("invocation error = %v (kind %s), want kind %s and %q", &e, e.Kind, tt.kind, tt.msg)
			}
		})
	}

	// The base64 quirk does not fail the invocation but is flagged.
	res, err := h.InvokeQueueTrigger(context.Background(), "Base64Out", "hello", 1)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Base64Decoded, ",") != "outQ" || string(res.Outputs["outQ"]) != `"test"` {
		t.Errorf("result = %+v", res)
	}
	errs := h.InvocationErrors()
	if last := errs[len(errs)-1]; last.Kind != KindBase64Output || last.Failed || last.FunctionName != "Base64Out" {
		t.Errorf("last invocation error = %v", &last)
	}
}

func TestLogCapture(t *testing.T) {
	root := newAppRoot(t, hostJSON(), map[string]string{"Echo": echoJSON}, "")
	h := startHost(t, root, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		source string
		level  slog.Level
		text   string
	}{
		{SourceStdout, slog.LevelInfo, "testhandler: starting"},
		{SourceStderr, slog.LevelWarn, "testhandler: warning sample"},
		{SourceStderr, slog.LevelError, "testhandler: error sample"},
		{SourceStdout, slog.LevelInfo, "msg=\"handler listening\" mode=host"},
	}
	for _, tt := range tests {
		l, err := h.WaitForLog(ctx, func(l LogLine) bool { return strings.Contains(l.Text, tt.text) })
		if err != nil {
			t.Fatalf("%q: %v", tt.text, err)
		}
		if l.Source != tt.source || l.Level != tt.level || l.PID != h.PID() {
			t.Errorf("line %v: source %s level %v pid %d, want %s %v %d", l, l.Source, l.Level, l.PID, tt.source, tt.level, h.PID())
		}
	}
}

func TestReadinessTimeoutStopsTheHost(t *testing.T) {
	root := newAppRoot(t, hostJSON("-no-listen"), map[string]string{"Echo": echoJSON}, "")
	_, err := Start(context.Background(), Options{AppRoot: root, ReadinessTimeout: 100 * time.Millisecond})
	if err == nil || !errors.Is(err, ErrHostStopped) || !strings.Contains(err.Error(), "exceeded http worker restart retry count") ||
		!strings.Contains(err.Error(), "initializing the handler") {
		t.Fatalf("Start = %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	root := newAppRoot(t, `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"no-such-handler-binary"}}}`, nil, "")
	if _, err := Start(context.Background(), Options{AppRoot: root}); err == nil || !strings.Contains(err.Error(), "no-such-handler-binary") {
		t.Errorf("missing executable: %v", err)
	}
	root = newAppRoot(t, `{"version":"2.0"}`, nil, "")
	if _, err := Start(context.Background(), Options{AppRoot: root}); err == nil || !strings.Contains(err.Error(), "defaultExecutablePath is empty") {
		t.Errorf("no customHandler section: %v", err)
	}
	root = newAppRoot(t, hostJSON(), nil, `{"Values":`)
	if _, err := Start(context.Background(), Options{AppRoot: root}); err == nil || !strings.Contains(err.Error(), "local.settings.json: malformed JSON") {
		t.Errorf("bad local.settings.json: %v", err)
	}
}

func TestQueueAndTimerTriggersEndToEnd(t *testing.T) {
	root := newAppRoot(t, hostJSON(), map[string]string{"Work": workJSON, "Tick": tickJSON}, "")
	h := startHost(t, root, Options{})
	ctx := context.Background()

	res, err := h.InvokeQueueTrigger(ctx, "Work", `{"op":"run","id":"mine"}`, 3)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Text, DequeueCount, ID, Op string
		Inserted                   time.Time
	}
	if err := json.Unmarshal(res.Outputs["out"], &out); err != nil {
		t.Fatalf("out = %s: %v", res.Outputs["out"], err)
	}
	if out.Text != `{"op":"run","id":"mine"}` || out.DequeueCount != "3" || out.ID != "mine" || out.Op != "run" ||
		time.Since(out.Inserted) > time.Minute {
		t.Errorf("out = %+v", out)
	}
	if strings.Join(res.Logs, "|") != `processed {"op":"run","id":"mine"}` || res.HTTP != nil {
		t.Errorf("result = %+v", res)
	}

	next := time.Date(2025, 1, 1, 10, 5, 0, 0, time.UTC)
	res, err = h.InvokeTimerTrigger(ctx, "Tick", TimerInfo{IsPastDue: true, ScheduleStatus: &ScheduleStatus{Next: next, Last: next.Add(-5 * time.Minute), LastUpdated: next}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Logs, "|") != "tick pastDue=true dst=true next=2025-01-01T10:05:00Z" {
		t.Errorf("timer logs = %q", res.Logs)
	}
	if _, err := h.WaitForLog(ctx, func(l LogLine) bool { return l.Source == SourceFunction && l.Function == "Tick" }); err != nil {
		t.Error(err)
	}
	if _, err := h.InvokeTimerTrigger(ctx, "Work", TimerInfo{}); err == nil {
		t.Error("InvokeTimerTrigger on a queue function succeeded")
	}
	assertNoInvocationErrors(t, h)
}

func TestForwardingMode(t *testing.T) {
	host := `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"},"enableForwardingHttpRequest":true}}`
	root := newAppRoot(t, host, map[string]string{"Echo": echoJSON}, "")
	h := startHost(t, root, Options{})
	url := h.URL() + "/api/echo/7/p?x=1&x=2"
	status, _, body := do(t, "POST", url, "text/plain", "raw body")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	var e echoReply
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	// Forwarding rebuilds the query: repeated keys collapse into one.
	if e.URL != h.URL()+"/api/echo/7/p?x=1%2C2" || e.Params["id"] != "7" || e.Body != "raw body" || !guidRE.MatchString(e.InvocationID) {
		t.Errorf("echo = %+v", e)
	}
	assertNoInvocationErrors(t, h)
}

func TestFunctionTimeoutRestartsTheHandler(t *testing.T) {
	root := newAppRoot(t, hostJSON(), map[string]string{"Slow": slowJSON, "Echo": echoJSON}, "")
	h := startHost(t, root, Options{FunctionTimeout: 200 * time.Millisecond})
	if status, _, _ := do(t, "GET", h.URL()+"/api/slow", "", ""); status != 500 {
		t.Fatalf("status = %d, want 500", status)
	}
	errs := h.InvocationErrors()
	if len(errs) != 1 || errs[0].Kind != KindTimeout {
		t.Fatalf("errors = %v", errs)
	}
	if status, _, _ := do(t, "GET", h.URL()+"/api/echo/1/x", "", ""); status != 200 {
		t.Fatalf("after timeout: status %d", status)
	}
	if h.Restarts() != 1 || h.Err() != nil {
		t.Errorf("Restarts = %d, Err = %v", h.Restarts(), h.Err())
	}
}
