package hostemulator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/handler"
)

// captured is one request the fake handler received.
type captured struct {
	method, path     string
	header           http.Header
	contentLength    int64
	transferEncoding []string
	data, metadata   map[string]json.RawMessage
}

// fakeHost returns a Host whose "handler process" is an in-test HTTP server
// that records each invocation and answers with reply.
func fakeHost(t *testing.T, functions map[string]string, reply func(w http.ResponseWriter, c captured)) (*Host, <-chan captured) {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "host.json"), []byte(`{"version":"2.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, content := range functions {
		if err := os.MkdirAll(filepath.Join(root, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name, "function.json"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := handler.LoadAppConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan captured, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p struct {
			Data     map[string]json.RawMessage
			Metadata map[string]json.RawMessage
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("fake handler: payload %s: %v", body, err)
		}
		c := captured{r.Method, r.URL.Path, r.Header, r.ContentLength, r.TransferEncoding, p.Data, p.Metadata}
		seen <- c
		reply(w, c)
	}))
	t.Cleanup(srv.Close)
	h := &Host{
		cfg:              cfg,
		logs:             newLogBook(slog.New(slog.DiscardHandler)),
		hostVersion:      DefaultHostVersion,
		readinessTimeout: time.Second,
		stopCh:           make(chan struct{}),
		done:             make(chan struct{}),
		changed:          make(chan struct{}),
	}
	w := &worker{base: srv.URL, exited: make(chan struct{}), transport: &http.Transport{}}
	h.current, h.readyWorker = w, w
	return h, seen
}

func replyJSON(body string) func(http.ResponseWriter, captured) {
	return func(w http.ResponseWriter, _ captured) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = io.WriteString(w, body)
	}
}

var (
	offsetTimeRE = regexp.MustCompile(`^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"$`)
	utcNowRE     = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`)
)

func checkSys(t *testing.T, raw json.RawMessage, function string) {
	t.Helper()
	var sys struct{ MethodName, UtcNow, RandGuid string }
	if err := json.Unmarshal(raw, &sys); err != nil || sys.MethodName != function || !utcNowRE.MatchString(sys.UtcNow) || !guidRE.MatchString(sys.RandGuid) {
		t.Errorf("sys = %s", raw)
	}
}

func checkInvocationRequest(t *testing.T, c captured, function string) {
	t.Helper()
	if c.method != "POST" || c.path != "/"+function || c.contentLength != -1 || strings.Join(c.transferEncoding, ",") != "chunked" {
		t.Errorf("request = %s %s length %d encoding %v", c.method, c.path, c.contentLength, c.transferEncoding)
	}
	if !guidRE.MatchString(c.header.Get("X-Azure-Functions-InvocationId")) || c.header.Get("X-Azure-Functions-HostVersion") != "4.1037.0.0" ||
		c.header.Get("User-Agent") != "Azure-Functions-Host/4.1037.0.0" || c.header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("headers = %v", c.header)
	}
}

func TestQueueTriggerPayload(t *testing.T) {
	fns := map[string]string{
		"Work":   `{"bindings":[{"type":"queueTrigger","direction":"in","name":"msg","queueName":"q"},{"type":"queue","direction":"out","name":"out","queueName":"r"}]}`,
		"Binary": `{"bindings":[{"type":"queueTrigger","direction":"in","name":"item","queueName":"q","dataType":"binary"},{"type":"queue","direction":"out","name":"out"}]}`,
		"Hello":  `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"res"}]}`,
	}
	h, seen := fakeHost(t, fns, replyJSON(`{"outputs":{"out":{"done":true}},"LOGS":["did it"],"returnvalue":null}`))
	res, err := h.InvokeQueueTrigger(context.Background(), "Work", `{"op":"run","id":"mine","nested":{"a":1},"list":[1],"n":2}`, 4)
	if err != nil {
		t.Fatal(err)
	}
	c := <-seen
	checkInvocationRequest(t, c, "Work")
	if got := string(c.data["msg"]); got != `"\"{\\\"op\\\":\\\"run\\\",\\\"id\\\":\\\"mine\\\",\\\"nested\\\":{\\\"a\\\":1},\\\"list\\\":[1],\\\"n\\\":2}\""` {
		t.Errorf("Data.msg = %s", got)
	}
	md := c.metadata
	want := map[string]string{
		"DequeueCount": `"4"`,
		"Id":           `"\"mine\""`, // the message's id property overwrote the queue Id
		"op":           `"\"run\""`,
		"n":            `"\"2\""`,
		"nested":       `{"a":1}`,
	}
	for k, v := range want {
		if string(md[k]) != v {
			t.Errorf("Metadata[%s] = %s, want %s", k, md[k], v)
		}
	}
	for _, k := range []string{"InsertionTime", "ExpirationTime", "NextVisibleTime"} {
		if !offsetTimeRE.MatchString(string(md[k])) {
			t.Errorf("Metadata[%s] = %s", k, md[k])
		}
	}
	if !regexp.MustCompile(`^"\\"[A-Za-z0-9+/=]{24}\\""$`).MatchString(string(md["PopReceipt"])) {
		t.Errorf("PopReceipt = %s", md["PopReceipt"])
	}
	for _, k := range []string{"QueueTrigger", "id", "list"} {
		if _, ok := md[k]; ok {
			t.Errorf("Metadata has %q", k)
		}
	}
	checkSys(t, md["sys"], "Work")
	if string(res.Outputs["out"]) != `{"done":true}` || strings.Join(res.Logs, ",") != "did it" || !guidRE.MatchString(res.InvocationID) ||
		res.InvocationID != c.header.Get("X-Azure-Functions-InvocationId") {
		t.Errorf("result = %+v", res)
	}

	// A binary trigger gets base64, encoded once; a plain-text message promotes nothing.
	if _, err := h.InvokeQueueTrigger(context.Background(), "Binary", "hello", 1); err != nil {
		t.Fatal(err)
	}
	c = <-seen
	if string(c.data["item"]) != `"aGVsbG8="` || string(c.metadata["DequeueCount"]) != `"1"` || !guidRE.MatchString(jsonText(json.RawMessage(jsonText(c.metadata["Id"])))) {
		t.Errorf("binary: Data = %s, Metadata = %v", c.data["item"], c.metadata)
	}
	if _, err := h.InvokeQueueTrigger(context.Background(), "Hello", "x", 1); err == nil || !strings.Contains(err.Error(), "not a queueTrigger") {
		t.Errorf("queue invocation of an http function: %v", err)
	}
	if _, err := h.InvokeQueueTrigger(context.Background(), "Nope", "x", 1); err == nil {
		t.Error("queue invocation of an unknown function succeeded")
	}
	if errs := h.InvocationErrors(); len(errs) != 0 {
		t.Errorf("invocation errors: %v", errs)
	}
}

func TestTimerTriggerPayload(t *testing.T) {
	fns := map[string]string{
		"Cron": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 */5 * * * *"}]}`,
		"Span": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"myTimer","schedule":"00:05:00"}]}`,
	}
	h, seen := fakeHost(t, fns, replyJSON(`{}`))
	last := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	if _, err := h.InvokeTimerTrigger(context.Background(), "Cron", TimerInfo{ScheduleStatus: &ScheduleStatus{
		Last: last, Next: last.Add(5 * time.Minute), LastUpdated: last.Add(1500 * time.Millisecond),
	}}); err != nil {
		t.Fatal(err)
	}
	c := <-seen
	checkInvocationRequest(t, c, "Cron")
	want := `{"IsPastDue":false,"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2025-01-01T10:00:00+00:00","LastUpdated":"2025-01-01T10:00:01.5+00:00","Next":"2025-01-01T10:05:00+00:00"}}`
	if string(c.data["timer"]) != want {
		t.Errorf("Data.timer = %s\nwant %s", c.data["timer"], want)
	}
	if len(c.metadata) != 1 {
		t.Errorf("Metadata = %v, want sys only", c.metadata)
	}
	checkSys(t, c.metadata["sys"], "Cron")

	if _, err := h.InvokeTimerTrigger(context.Background(), "Span", TimerInfo{IsPastDue: true}); err != nil {
		t.Fatal(err)
	}
	c = <-seen
	if string(c.data["myTimer"]) != `{"IsPastDue":true,"Schedule":{"AdjustForDST":false},"ScheduleStatus":null}` {
		t.Errorf("Data.myTimer = %s", c.data["myTimer"])
	}
}

func TestInvokeEncodesValues(t *testing.T) {
	fns := map[string]string{"Blob": `{"bindings":[{"type":"blobTrigger","direction":"in","name":"blob","path":"c/{name}"}]}`}
	h, seen := fakeHost(t, fns, replyJSON(`{"Outputs":{}}`))
	when := time.Date(2025, 1, 1, 10, 0, 0, 123, time.UTC)
	_, err := h.Invoke(context.Background(), "blob", map[string]any{"blob": []byte("hi"), "other": "text"}, map[string]any{
		"BlobTrigger": "c/x", "Uri": "http://x/c/x", "name": "x", "Properties": map[string]any{"Length": 2}, "Count": 3,
		"Flag": true, "Tags": []string{"a"}, "When": when, "Missing": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := <-seen
	if c.path != "/Blob" || string(c.data["blob"]) != `"aGk="` || string(c.data["other"]) != `"\"text\""` {
		t.Errorf("Data = %v path %s", c.data, c.path)
	}
	want := map[string]string{
		"Uri": `"\"http://x/c/x\""`, "name": `"\"x\""`, "Properties": `{"Length":2}`, "Count": `"3"`,
		"Flag": `"true"`, "Tags": `"[\"a\"]"`, "When": `"2025-01-01T10:00:00+00:00"`,
	}
	for k, v := range want {
		if string(c.metadata[k]) != v {
			t.Errorf("Metadata[%s] = %s, want %s", k, c.metadata[k], v)
		}
	}
	for _, k := range []string{"BlobTrigger", "Missing"} {
		if _, ok := c.metadata[k]; ok {
			t.Errorf("Metadata has %q", k)
		}
	}
}

func TestInvocationFailuresAreRecorded(t *testing.T) {
	fns := map[string]string{"Work": `{"bindings":[{"type":"queueTrigger","direction":"in","name":"msg"}]}`}
	h, _ := fakeHost(t, fns, func(w http.ResponseWriter, _ captured) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	_, err := h.InvokeQueueTrigger(context.Background(), "Work", "x", 1)
	var ie *InvocationError
	if !errors.As(err, &ie) || ie.Kind != KindStatus || !ie.Failed || ie.FunctionName != "Work" {
		t.Fatalf("err = %v", err)
	}
	if errs := h.InvocationErrors(); len(errs) != 1 || errs[0].InvocationID != ie.InvocationID {
		t.Errorf("recorded = %v", errs)
	}
	if _, err := h.WaitForLog(context.Background(), func(l LogLine) bool {
		return l.Source == SourceHost && l.Level == slog.LevelError && strings.Contains(l.Text, "status: handler answered HTTP 500")
	}); err != nil {
		t.Error(err)
	}
}

func TestInterpretReply(t *testing.T) {
	httpFn := mustFunction(t, `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"res"},
		{"type":"queue","direction":"out","name":"q"},{"type":"blob","direction":"out","name":"b","dataType":"binary"}]}`)
	returnFn := mustFunction(t, `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"$return"}]}`)
	queueReturnFn := mustFunction(t, `{"bindings":[{"type":"queueTrigger","direction":"in","name":"m"},{"type":"queue","direction":"out","name":"$return"}]}`)
	const js = "application/json"
	tests := []struct {
		name        string
		fn          handler.FunctionInfo
		status      int
		ctype, body string
		wantKind    ErrorKind // "" = success
		wantStatus  int
		wantBody    string
		wantCType   string
		wantHeader  map[string]string
		wantBase64  string
		wantOutputs string // sorted output names
	}{
		{name: "non-2xx", fn: httpFn, status: 400, ctype: js, body: `{}`, wantKind: KindStatus},
		{name: "text/plain", fn: httpFn, status: 200, ctype: "text/plain; charset=utf-8", body: `{}`, wantKind: KindContentType},
		{name: "no content type", fn: httpFn, status: 200, ctype: "", body: `{}`, wantKind: KindContentType},
		{name: "empty body", fn: httpFn, status: 200, ctype: js, body: ``, wantKind: KindEmptyBody},
		{name: "null body", fn: httpFn, status: 204, ctype: js, body: " null ", wantKind: KindEmptyBody},
		{name: "array body", fn: httpFn, status: 200, ctype: js, body: `[]`, wantKind: KindInvalidJSON},
		{name: "trailing data", fn: httpFn, status: 200, ctype: js, body: `{} {}`, wantKind: KindInvalidJSON},
		{name: "Outputs not an object", fn: httpFn, status: 200, ctype: js, body: `{"Outputs":[1]}`, wantKind: KindInvalidJSON},
		{name: "Logs not an array", fn: httpFn, status: 200, ctype: js, body: `{"Logs":"x"}`, wantKind: KindInvalidJSON},
		{name: "http output not an object", fn: httpFn, status: 200, ctype: js, body: `{"Outputs":{"res":42}}`, wantKind: KindHTTPOutput},
		{name: "http output plain string", fn: httpFn, status: 200, ctype: js, body: `{"Outputs":{"res":"SomeBlah"}}`, wantKind: KindHTTPOutput},
		{name: "bad statusCode", fn: httpFn, status: 200, ctype: js, body: `{"Outputs":{"res":{"statusCode":"abc"}}}`, wantKind: KindHTTPOutput},
		{name: "headers not an object", fn: httpFn, status: 200, ctype: js, body: `{"Outputs":{"res":{"headers":["a"]}}}`, wantKind: KindHTTPOutput},
		{name: "text/json accepted, case-insensitive top level", fn: httpFn, status: 200, ctype: "text/json",
			body:       `{"outputs":{"res":{"StatusCode":201,"Body":"created","Headers":{"Location":"/x","X-N":5,"X-Null":null}}}}`,
			wantStatus: 201, wantBody: "created", wantCType: "text/plain; charset=utf-8", wantHeader: map[string]string{"Location": "/x", "X-N": "5"}, wantOutputs: "res"},
		{name: "statusCode as a string, content type kept", fn: httpFn, status: 202, ctype: js,
			body:       `{"Outputs":{"res":{"statusCode":"404","body":"{}","headers":{"content-type":"application/json"}}}}`,
			wantStatus: 404, wantBody: "{}", wantCType: "application/json", wantOutputs: "res"},
		{name: "object body is indented", fn: httpFn, status: 200, ctype: js, body: `{"Outputs":{"res":{"body":{"a":[1,2]}}}}`,
			wantStatus: 200, wantBody: "{\n  \"a\": [\n    1,\n    2\n  ]\n}", wantCType: "text/plain; charset=utf-8", wantOutputs: "res"},
		{name: "http output as a JSON string", fn: httpFn, status: 200, ctype: js, body: `{"Outputs":{"res":"{\"statusCode\":418}"}}`,
			wantStatus: 418, wantBody: "", wantOutputs: "res"},
		{name: "Outputs without the http output", fn: httpFn, status: 200, ctype: js, body: `{"Outputs":{}}`,
			wantStatus: 200, wantBody: "{}"},
		{name: "nothing set", fn: httpFn, status: 200, ctype: js, body: `{"Logs":["a"]}`, wantStatus: 200, wantBody: ""},
		{name: "object ReturnValue properties become outputs", fn: httpFn, status: 200, ctype: js,
			body:       `{"Outputs":{"res":{"statusCode":500}},"ReturnValue":{"res":{"statusCode":200,"body":"rv"},"other":1}}`,
			wantStatus: 200, wantBody: "rv", wantOutputs: "res"},
		{name: "$return response object", fn: returnFn, status: 200, ctype: js, body: `{"Outputs":{},"ReturnValue":{"statusCode":201,"body":"made"}}`,
			wantStatus: 201, wantBody: "made", wantOutputs: "$return"},
		{name: "$return plain string body", fn: returnFn, status: 200, ctype: js, body: `{"ReturnValue":"just text"}`,
			wantStatus: 200, wantBody: "just text", wantOutputs: "$return"},
		{name: "null ReturnValue wipes Outputs[$return]", fn: returnFn, status: 200, ctype: js,
			body: `{"Outputs":{"$return":{"statusCode":201}},"ReturnValue":null}`, wantStatus: 200, wantBody: "{}"},
		{name: "base64 quirk on queue output", fn: httpFn, status: 200, ctype: js,
			body: `{"Outputs":{"res":{},"q":"test","b":"test"}}`, wantStatus: 200, wantBase64: "q", wantOutputs: "b,q,res"},
		{name: "JSON text output is safe", fn: httpFn, status: 200, ctype: js,
			body: `{"Outputs":{"res":{},"q":"{\"a\":1}"}}`, wantStatus: 200, wantOutputs: "q,res"},
		{name: "base64 quirk on $return", fn: queueReturnFn, status: 200, ctype: js, body: `{"ReturnValue":"1234"}`,
			wantBase64: "$return", wantOutputs: "$return"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, kind, err := interpretReply(tt.fn, tt.status, tt.ctype, []byte(tt.body))
			if tt.wantKind != "" {
				if err == nil || kind != tt.wantKind {
					t.Fatalf("= %+v, %q, %v; want kind %q", res, kind, err, tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected failure %q: %v", kind, err)
			}
			if tt.wantStatus != 0 {
				if res.HTTP == nil || res.HTTP.StatusCode != tt.wantStatus || string(res.HTTP.Body) != tt.wantBody {
					t.Fatalf("HTTP = %+v, want %d %q", res.HTTP, tt.wantStatus, tt.wantBody)
				}
			}
			if tt.wantCType != "" && res.HTTP.Header.Get("Content-Type") != tt.wantCType {
				t.Errorf("Content-Type = %q, want %q", res.HTTP.Header.Get("Content-Type"), tt.wantCType)
			}
			for k, v := range tt.wantHeader {
				if res.HTTP.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, res.HTTP.Header.Get(k), v)
				}
			}
			if tt.wantHeader != nil && res.HTTP.Header.Get("X-Null") != "" {
				t.Error("null header value was kept")
			}
			if got := strings.Join(res.Base64Decoded, ","); got != tt.wantBase64 {
				t.Errorf("Base64Decoded = %q, want %q", got, tt.wantBase64)
			}
			if got := strings.Join(sortedKeys(res.Outputs), ","); got != tt.wantOutputs {
				t.Errorf("outputs = %q, want %q", got, tt.wantOutputs)
			}
		})
	}
}

func TestUnknownOutputIsFlagged(t *testing.T) {
	fns := map[string]string{"Work": `{"bindings":[{"type":"queueTrigger","direction":"in","name":"msg"},{"type":"queue","direction":"out","name":"out"}]}`}
	h, _ := fakeHost(t, fns, replyJSON(`{"Outputs":{"Out":{"a":1}}}`))
	if _, err := h.InvokeQueueTrigger(context.Background(), "Work", "{}", 1); err != nil {
		t.Fatal(err)
	}
	errs := h.InvocationErrors()
	if len(errs) != 1 || errs[0].Kind != KindUnknownOutput || errs[0].Failed || !strings.Contains(errs[0].Err.Error(), `"Out"`) {
		t.Fatalf("errors = %v", errs)
	}
}

func mustFunction(t *testing.T, functionJSON string) handler.FunctionInfo {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "host.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "F"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "F", "function.json"), []byte(functionJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := handler.LoadAppConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Functions[0]
}

func sortedKeys(m map[string]json.RawMessage) []string {
	return slices.Sorted(maps.Keys(m))
}
