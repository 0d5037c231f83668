package durable

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// httpOrch calls CallHTTP with req and returns the response; the Await
// error is stored in *errOut.
func httpOrch(req HTTPRequest, errOut *error) Definition {
	return NewOrchestrator("HTTP", func(ctx *Context, _ any) (HTTPResponse, error) {
		resp, err := CallHTTP(ctx, req).Await()
		if errOut != nil {
			*errOut = err
		}
		return resp, err
	})
}

// respJSON is the built-in activity's result for a response.
func respJSON(t *testing.T, status int, headers HTTPHeaders, body string) string {
	t.Helper()
	b, err := json.Marshal(HTTPResponse{StatusCode: status, Headers: headers, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func httpScheduled(id int32, input string) act { return scheduled(id, HTTPActivityName, input) }

// decodeActivityInput decodes the built-in activity's input of an action.
func decodeActivityInput(t *testing.T, ev history.Event) HTTPActivityRequest {
	t.Helper()
	if ev.Type != history.TaskScheduled || ev.Name != HTTPActivityName {
		t.Fatalf("action %v is not a call of %s", describeActions([]history.Event{ev}), HTTPActivityName)
	}
	var r HTTPActivityRequest
	if err := json.Unmarshal([]byte(ev.Input), &r); err != nil {
		t.Fatalf("activity input %s: %v", ev.Input, err)
	}
	return r
}

// TestCallHTTPFollows202 is the asynchronous pattern: 202 twice (Retry-After
// in seconds, then as an HTTP date), then 200. Each poll waits on a durable
// timer and is a GET of Location without x-functions-key.
func TestCallHTTPFollows202(t *testing.T) {
	req := HTTPRequest{
		Method: "post", URL: "https://api.example.test/jobs",
		Headers: HTTPHeaders{"Content-Type": {"application/json"}, "X-Functions-Key": {"secret"}, "X-Trace": {"a", "b"}},
		Body:    `{"n":1}`,
	}
	d := newDriver(t, httpOrch(req, nil))
	acts := d.run(start(t0, "HTTP", ""))
	wantFirst := `{"method":"POST","uri":"https://api.example.test/jobs","headers":{"Content-Type":"application/json","X-Functions-Key":"secret","X-Trace":["a","b"]},"content":"{\"n\":1}","asynchronousPatternEnabled":true}`
	expectActions(t, "start", acts, httpScheduled(0, wantFirst))

	// 202 with a relative Location and Retry-After: 5 → timer at +5 s.
	at1 := t0.Add(time.Second)
	acts = d.run(ep(at1, evCompleted(0, respJSON(t, 202, HTTPHeaders{"location": {"/jobs/7/status"}, "Retry-After": {"5"}}, ""))))
	expectActions(t, "first 202", acts, timerAt(1, at1.Add(5*time.Second)))

	fire1 := at1.Add(5 * time.Second)
	acts = d.run(ep(fire1, evFired(1, fire1)))
	expectActions(t, "poll 1", acts, httpScheduled(2, ""))
	poll := decodeActivityInput(t, acts[0])
	if poll.Method != "GET" || poll.URI != "https://api.example.test/jobs/7/status" || poll.Content != "" {
		t.Errorf("poll request = %s %s content %q, want GET https://api.example.test/jobs/7/status without content", poll.Method, poll.URI, poll.Content)
	}
	if poll.Headers.Get("x-functions-key") != "" || poll.Headers.Get("Content-Type") != "application/json" || len(poll.Headers.Values("x-trace")) != 2 {
		t.Errorf("poll headers = %v, want the original ones minus x-functions-key", poll.Headers)
	}

	// 202 with an HTTP-date Retry-After → timer at that date.
	at2 := fire1.Add(time.Second)
	date := at2.Add(42 * time.Second).Truncate(time.Second)
	acts = d.run(ep(at2, evCompleted(2, respJSON(t, 202, HTTPHeaders{"Location": {"https://status.example.test/7"}, "Retry-After": {date.Format("Mon, 02 Jan 2006 15:04:05 GMT")}}, ""))))
	expectActions(t, "second 202", acts, timerAt(3, date))

	acts = d.run(ep(date, evFired(3, date)))
	expectActions(t, "poll 2", acts, httpScheduled(4, ""))
	if p := decodeActivityInput(t, acts[0]); p.URI != "https://status.example.test/7" || p.Method != "GET" {
		t.Errorf("second poll = %s %s, want GET https://status.example.test/7", p.Method, p.URI)
	}

	final := respJSON(t, 200, HTTPHeaders{"Content-Type": {"application/json"}}, `{"done":true}`)
	acts = d.run(ep(date.Add(time.Second), evCompleted(4, final)))
	expectActions(t, "200", acts, completedWith(5, final))
	var got HTTPResponse
	if err := json.Unmarshal([]byte(acts[0].Result), &got); err != nil || got.StatusCode != 200 || got.Body != `{"done":true}` || got.Header("content-type") != "application/json" {
		t.Errorf("output = %+v (%v)", got, err)
	}
}

// TestCallHTTPPollInterval: without Retry-After the poll waits the
// request's PollInterval, else the app's setting, else 30 s.
func TestCallHTTPPollInterval(t *testing.T) {
	accepted := func(t *testing.T) string {
		return respJSON(t, 202, HTTPHeaders{"Location": {"https://x.test/s"}}, "")
	}
	tests := []struct {
		name    string
		req     time.Duration
		app     time.Duration
		headers HTTPHeaders
		want    time.Duration
	}{
		{name: "Durable Functions default", want: 30 * time.Second},
		{name: "app setting", app: 7 * time.Second, want: 7 * time.Second},
		{name: "request beats app", req: 2 * time.Second, app: 7 * time.Second, want: 2 * time.Second},
		{name: "unparsable Retry-After", headers: HTTPHeaders{"Retry-After": {"soon"}}, want: 30 * time.Second},
		{name: "Retry-After 0", headers: HTTPHeaders{"Retry-After": {"0"}}, want: 0},
		{name: "Retry-After date in the past", headers: HTTPHeaders{"Retry-After": {"Sun, 06 Nov 1994 08:49:37 GMT"}}, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry()
			r.SetHTTPPollInterval(tc.app)
			if err := r.Add(httpOrch(HTTPRequest{URL: "https://x.test/", PollInterval: tc.req}, nil)); err != nil {
				t.Fatal(err)
			}
			fn, _ := r.orchestrator("HTTP")
			ex := newExecutor(fn, "inst1")
			ex.httpPollInterval = r.httpPollInterval() // as install.go does for the engine
			t.Cleanup(ex.Close)
			d := &driver{t: t, ex: ex}
			expectActions(t, "start", d.run(start(t0, "HTTP", "")), httpScheduled(0, `{"method":"GET","uri":"https://x.test/","asynchronousPatternEnabled":true}`))
			resp := accepted(t)
			if tc.headers != nil {
				h := HTTPHeaders{"Location": {"https://x.test/s"}}
				for k, v := range tc.headers {
					h[k] = v
				}
				resp = respJSON(t, 202, h, "")
			}
			expectActions(t, "202", d.run(ep(t0, evCompleted(0, resp))), timerAt(1, t0.Add(tc.want)))
		})
	}
}

// TestCallHTTPTimeout: the deadline timer fires while a poll waits; the
// call fails with ErrTimeout and nothing more is scheduled.
func TestCallHTTPTimeout(t *testing.T) {
	var got error
	req := HTTPRequest{URL: "https://x.test/slow", Timeout: time.Minute}
	d := newDriver(t, httpOrch(req, &got))
	expectActions(t, "start", d.run(start(t0, "HTTP", "")),
		httpScheduled(0, `{"method":"GET","uri":"https://x.test/slow","asynchronousPatternEnabled":true,"timeout":"00:01:00"}`),
		timerAt(1, t0.Add(time.Minute)))
	expectActions(t, "202", d.run(ep(t0.Add(time.Second), evCompleted(0, respJSON(t, 202, HTTPHeaders{"Location": {"https://x.test/s"}, "Retry-After": {"50"}}, "")))),
		timerAt(2, t0.Add(51*time.Second)))
	expectActions(t, "poll", d.run(ep(t0.Add(51*time.Second), evFired(2, t0.Add(51*time.Second)))), httpScheduled(3, ""))
	deadline := t0.Add(time.Minute)
	acts := d.run(ep(deadline, evFired(1, deadline)))
	if len(acts) != 1 || acts[0].Type != history.ExecutionCompleted || acts[0].Status != history.StatusFailed {
		t.Fatalf("after the deadline: %v, want one failed completion", describeActions(acts))
	}
	if !errors.Is(got, ErrTimeout) || !strings.Contains(got.Error(), "GET https://x.test/slow did not finish within 1m0s") {
		t.Errorf("error = %v, want ErrTimeout naming the request", got)
	}
	if ft := acts[0].Failure.ErrorType; ft != "TimeoutError" {
		t.Errorf("failure type = %q, want TimeoutError", ft)
	}
	// The abandoned poll's late answer changes nothing.
	if acts := d.run(ep(deadline.Add(time.Second), evCompleted(3, respJSON(t, 200, nil, "late")))); len(acts) != 0 {
		t.Errorf("late answer produced %v", describeActions(acts))
	}
}

// TestCallHTTPTimeoutCancelledOnSuccess: a call that finishes in time
// cancels its deadline, which then does not keep the orchestration waiting.
func TestCallHTTPTimeoutCancelledOnSuccess(t *testing.T) {
	orch := NewOrchestrator("HTTP", func(ctx *Context, _ any) (int, error) {
		resp, err := CallHTTP(ctx, HTTPRequest{URL: "https://x.test/", Timeout: time.Hour}).Await()
		if err != nil {
			return 0, err
		}
		if err := ctx.Sleep(time.Minute); err != nil {
			return 0, err
		}
		return resp.StatusCode, nil
	})
	d := newDriver(t, orch)
	d.run(start(t0, "HTTP", ""))
	expectActions(t, "200", d.run(ep(t0, evCompleted(0, respJSON(t, 200, nil, "")))), timerAt(2, t0.Add(time.Minute)))
	expectActions(t, "sleep", d.run(ep(t0.Add(time.Minute), evFired(2, t0.Add(time.Minute)))), completedWith(3, "200"))
}

// TestCallHTTPRetries: listed status codes and failures of the activity
// are retried with durable timers (backoff as RetryPolicy says); an
// unlisted status is the result.
func TestCallHTTPRetries(t *testing.T) {
	retry := &HTTPRetryOptions{
		RetryPolicy:        RetryPolicy{MaxAttempts: 4, FirstRetryInterval: 2 * time.Second, BackoffCoefficient: 3},
		StatusCodesToRetry: []int{500, 503},
	}
	t.Run("503, network failure, 500, then 404 is the result", func(t *testing.T) {
		d := newDriver(t, httpOrch(HTTPRequest{Method: "PUT", URL: "https://x.test/r", Body: "v", Retry: retry}, nil))
		in := `{"method":"PUT","uri":"https://x.test/r","content":"v","asynchronousPatternEnabled":true}`
		expectActions(t, "start", d.run(start(t0, "HTTP", "")), httpScheduled(0, in))
		expectActions(t, "503", d.run(ep(t0, evCompleted(0, respJSON(t, 503, nil, "busy")))), timerAt(1, t0.Add(2*time.Second)))
		at := t0.Add(2 * time.Second)
		expectActions(t, "retry 1", d.run(ep(at, evFired(1, at))), httpScheduled(2, in))
		expectActions(t, "network failure", d.run(ep(at, evFailed(2, fd("connection refused")))), timerAt(3, at.Add(6*time.Second)))
		at = at.Add(6 * time.Second)
		expectActions(t, "retry 2", d.run(ep(at, evFired(3, at))), httpScheduled(4, in))
		expectActions(t, "500", d.run(ep(at, evCompleted(4, respJSON(t, 500, nil, "")))), timerAt(5, at.Add(18*time.Second)))
		at = at.Add(18 * time.Second)
		expectActions(t, "retry 3", d.run(ep(at, evFired(5, at))), httpScheduled(6, in))
		notFound := respJSON(t, 404, nil, "no")
		expectActions(t, "404", d.run(ep(at, evCompleted(6, notFound))), completedWith(7, notFound))
	})
	t.Run("exhausted on 503", func(t *testing.T) {
		var got error
		d := newDriver(t, httpOrch(HTTPRequest{URL: "https://x.test/r", Retry: retry}, &got))
		d.run(start(t0, "HTTP", ""))
		at := t0
		for i := int32(0); i < 3; i++ {
			expectActions(t, "503", d.run(ep(at, evCompleted(2*i, respJSON(t, 503, nil, "busy")))), timerAt(2*i+1, at.Add(retry.delay(int(i+1)))))
			at = at.Add(retry.delay(int(i + 1)))
			expectActions(t, "retry", d.run(ep(at, evFired(2*i+1, at))), httpScheduled(2*i+2, ""))
		}
		acts := d.run(ep(at, evCompleted(6, respJSON(t, 503, HTTPHeaders{"Retry-After": {"9"}}, "still busy"))))
		if len(acts) != 1 || acts[0].Status != history.StatusFailed {
			t.Fatalf("after 4 attempts: %v, want a failed completion", describeActions(acts))
		}
		var se *HTTPStatusError
		if !errors.As(got, &se) || se.Response.StatusCode != 503 || se.Response.Body != "still busy" || se.Response.Header("retry-after") != "9" {
			t.Fatalf("error = %#v, want *HTTPStatusError with the last response", got)
		}
		if acts[0].Failure.ErrorType != "HTTPStatusError" {
			t.Errorf("failure type = %q", acts[0].Failure.ErrorType)
		}
	})
	t.Run("no list: any status outside 2xx fails, 202 is still followed", func(t *testing.T) {
		d := newDriver(t, httpOrch(HTTPRequest{URL: "https://x.test/r", Retry: &HTTPRetryOptions{RetryPolicy: RetryPolicy{MaxAttempts: 2, FirstRetryInterval: time.Second}}}, nil))
		d.run(start(t0, "HTTP", ""))
		expectActions(t, "202", d.run(ep(t0, evCompleted(0, respJSON(t, 202, HTTPHeaders{"Location": {"https://x.test/s"}, "Retry-After": {"1"}}, "")))), timerAt(1, t0.Add(time.Second)))
		at := t0.Add(time.Second)
		expectActions(t, "poll", d.run(ep(at, evFired(1, at))), httpScheduled(2, ""))
		// The poll has its own attempts.
		expectActions(t, "400", d.run(ep(at, evCompleted(2, respJSON(t, 400, nil, "")))), timerAt(3, at.Add(time.Second)))
		at = at.Add(time.Second)
		expectActions(t, "retry poll", d.run(ep(at, evFired(3, at))), httpScheduled(4, ""))
		ok := respJSON(t, 201, nil, "made")
		expectActions(t, "201", d.run(ep(at, evCompleted(4, ok))), completedWith(5, ok))
	})
	t.Run("without Retry an activity failure fails the call", func(t *testing.T) {
		var got error
		d := newDriver(t, httpOrch(HTTPRequest{URL: "https://x.test/r"}, &got))
		d.run(start(t0, "HTTP", ""))
		acts := d.run(ep(t0, evFailed(0, fd("dial tcp: connection refused"))))
		var tf *TaskFailedError
		if len(acts) != 1 || acts[0].Status != history.StatusFailed || !errors.As(got, &tf) || tf.TaskName != HTTPActivityName {
			t.Fatalf("actions %v, error %v: want a failed completion with a *TaskFailedError of %s", describeActions(acts), got, HTTPActivityName)
		}
	})
}

// TestCallHTTPDisablePolling returns the 202 as it is.
func TestCallHTTPDisablePolling(t *testing.T) {
	d := newDriver(t, httpOrch(HTTPRequest{URL: "https://x.test/", DisablePolling: true}, nil))
	expectActions(t, "start", d.run(start(t0, "HTTP", "")), httpScheduled(0, `{"method":"GET","uri":"https://x.test/","asynchronousPatternEnabled":false}`))
	accepted := respJSON(t, 202, HTTPHeaders{"Location": {"https://x.test/s"}}, "")
	expectActions(t, "202", d.run(ep(t0, evCompleted(0, accepted))), completedWith(1, accepted))
}

// TestCallHTTPBadInput: an invalid request fails the task at once, with
// nothing scheduled, and says what is wrong.
func TestCallHTTPBadInput(t *testing.T) {
	tests := []struct {
		name string
		req  HTTPRequest
		want string
	}{
		{"relative URL", HTTPRequest{URL: "/jobs"}, `URL: "/jobs" is not an absolute http or https URL`},
		{"unparsable URL", HTTPRequest{URL: "http://[::1"}, `URL: "http://[::1" does not parse`},
		{"other scheme", HTTPRequest{URL: "ftp://x.test/f"}, "not an absolute http or https URL"},
		{"no host", HTTPRequest{URL: "http:///p"}, "has no host"},
		{"unsupported method", HTTPRequest{Method: "TRACE", URL: "https://x.test/"}, `method: "TRACE" is not supported`},
		{"method with a space", HTTPRequest{Method: "GE T", URL: "https://x.test/"}, "is not supported"},
		{"newline in a header value", HTTPRequest{URL: "https://x.test/", Headers: HTTPHeaders{"X-A": {"ok\r\nX-Evil: 1"}}}, "header X-A: the value holds control character U+000D at byte 2"},
		{"bad header name", HTTPRequest{URL: "https://x.test/", Headers: HTTPHeaders{"X A": {"v"}}}, `header name: "X A" is not a valid HTTP header name`},
		{"binary body", HTTPRequest{Method: "POST", URL: "https://x.test/", Body: "ab\xff\xfe"}, "body: not UTF-8 text (invalid byte 0xff at offset 2)"},
		{"negative timeout", HTTPRequest{URL: "https://x.test/", Timeout: -time.Second}, "timeout: -1s is negative"},
		{"bad retry", HTTPRequest{URL: "https://x.test/", Retry: &HTTPRetryOptions{}}, "retry: durable: RetryPolicy.MaxAttempts must be at least 1"},
		{"token without resource", HTTPRequest{URL: "https://x.test/", TokenSource: ManagedIdentityToken(" ")}, "token source: the resource is empty"},
		{"unknown token kind", HTTPRequest{URL: "https://x.test/", TokenSource: &TokenSource{Kind: "Magic", Resource: "r"}}, `kind "Magic" is not supported`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got error
			d := newDriver(t, httpOrch(tc.req, &got))
			acts := d.run(start(t0, "HTTP", ""))
			if len(acts) != 1 || acts[0].Type != history.ExecutionCompleted || acts[0].Status != history.StatusFailed {
				t.Fatalf("actions %v, want only a failed completion", describeActions(acts))
			}
			if !errors.Is(got, ErrInvalidHTTPRequest) || !strings.Contains(got.Error(), tc.want) {
				t.Errorf("error = %v, want ErrInvalidHTTPRequest containing %q", got, tc.want)
			}
			if acts[0].Failure.ErrorType != "HTTPRequestError" {
				t.Errorf("failure type = %q", acts[0].Failure.ErrorType)
			}
		})
	}
}

// TestCallHTTPBadLocation: a 202 whose Location leads nowhere usable fails
// the call, naming the header.
func TestCallHTTPBadLocation(t *testing.T) {
	var got error
	d := newDriver(t, httpOrch(HTTPRequest{URL: "https://x.test/"}, &got))
	d.run(start(t0, "HTTP", ""))
	acts := d.run(ep(t0, evCompleted(0, respJSON(t, 202, HTTPHeaders{"Location": {"ftp://files.test/x"}}, ""))))
	if len(acts) != 1 || acts[0].Status != history.StatusFailed || !errors.Is(got, ErrInvalidHTTPRequest) || !strings.Contains(got.Error(), `Location header "ftp://files.test/x"`) {
		t.Fatalf("actions %v, error %v", describeActions(acts), got)
	}
}

// TestCallHTTPNotRegistered: an app without the built-in activity gets a
// failure naming it.
func TestCallHTTPNotRegistered(t *testing.T) {
	var got error
	d := newDriver(t, httpOrch(HTTPRequest{URL: "https://x.test/"}, &got))
	d.run(start(t0, "HTTP", ""))
	nr := history.FailureDetails{ErrorType: "NotRegisteredError", ErrorMessage: `activity "BuiltIn::HttpActivity" is not registered in this app`, IsNonRetriable: true}
	d.run(ep(t0, evFailed(0, nr)))
	var tf *TaskFailedError
	if got == nil || !strings.Contains(got.Error(), `durable HTTP needs the built-in activity "BuiltIn::HttpActivity"`) || !errors.As(got, &tf) {
		t.Fatalf("error = %v", got)
	}
}

// TestCallHTTPReplayDeterministic replays every prefix of a call with a
// 202, a retried 503 and a timeout bound, and checks that replaying code
// makes exactly the same actions.
func TestCallHTTPReplayDeterministic(t *testing.T) {
	req := HTTPRequest{
		Method: "POST", URL: "https://x.test/start", Headers: HTTPHeaders{"x-functions-key": {"k"}}, Body: "go",
		Timeout: time.Hour, TokenSource: ManagedIdentityToken("https://vault.azure.net").WithClientID("cid"),
		Retry: &HTTPRetryOptions{RetryPolicy: RetryPolicy{MaxAttempts: 3, FirstRetryInterval: 10 * time.Second}, StatusCodesToRetry: []int{503}},
	}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	c := assertReplayDeterministic(t, httpOrch(req, nil),
		start(t0, "HTTP", ""),
		ep(at(1), evCompleted(0, respJSON(t, 202, HTTPHeaders{"Location": {"/s/1"}, "Retry-After": {"3"}}, ""))),
		ep(at(4), evFired(2, at(4))),
		ep(at(5), evCompleted(3, respJSON(t, 503, nil, ""))),
		ep(at(15), evFired(4, at(15))),
		ep(at(16), evCompleted(5, respJSON(t, 202, HTTPHeaders{"Location": {"/s/1"}}, ""))),
		ep(at(46), evFired(6, at(46))),
		ep(at(47), evCompleted(7, respJSON(t, 200, nil, "done"))),
	)
	if c == nil || c.Status != history.StatusCompleted || !strings.Contains(c.Result, `"content":"done"`) {
		t.Fatalf("completion = %+v", c)
	}
}

// TestCallHTTPTokenSourceOnTheWire: the token source travels in Durable
// Functions' shape, on the first request and on polls.
func TestCallHTTPTokenSourceOnTheWire(t *testing.T) {
	d := newDriver(t, httpOrch(HTTPRequest{URL: "https://x.test/", TokenSource: ManagedIdentityToken("https://management.core.windows.net/")}, nil))
	expectActions(t, "start", d.run(start(t0, "HTTP", "")),
		httpScheduled(0, `{"method":"GET","uri":"https://x.test/","tokenSource":{"kind":"AzureManagedIdentity","resource":"https://management.core.windows.net/"},"asynchronousPatternEnabled":true}`))
	d.run(ep(t0, evCompleted(0, respJSON(t, 202, HTTPHeaders{"Location": {"https://x.test/s"}, "Retry-After": {"1"}}, ""))))
	acts := d.run(ep(t0.Add(time.Second), evFired(1, t0.Add(time.Second))))
	if p := decodeActivityInput(t, acts[0]); p.TokenSource == nil || p.TokenSource.Resource != "https://management.core.windows.net/" {
		t.Errorf("poll token source = %+v", p.TokenSource)
	}
}

func TestHTTPHeadersJSON(t *testing.T) {
	var h HTTPHeaders
	if err := json.Unmarshal([]byte(`{"Set-Cookie":["a=1","b=2"],"content-type":"text/plain","Empty":[]}`), &h); err != nil {
		t.Fatal(err)
	}
	if got := h.Values("set-cookie"); len(got) != 2 || got[1] != "b=2" {
		t.Errorf("Values(set-cookie) = %q", got)
	}
	if got := h.Get("Content-Type"); got != "text/plain" {
		t.Errorf("Get(Content-Type) = %q", got)
	}
	b, err := json.Marshal(h)
	if err != nil || string(b) != `{"Empty":[],"Set-Cookie":["a=1","b=2"],"content-type":"text/plain"}` {
		t.Errorf("Marshal = %s, %v", b, err)
	}
	if err := json.Unmarshal([]byte(`{"X":7}`), &h); err == nil || !strings.Contains(err.Error(), `HTTP header "X": want a string or an array of strings`) {
		t.Errorf("number value: err = %v", err)
	}
}

func TestHTTPActivityRequestArrayInput(t *testing.T) {
	var r HTTPActivityRequest
	if err := json.Unmarshal([]byte(`[{"method":"GET","uri":"https://x.test/","headers":{"A":["1","2"]}}]`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Method != "GET" || r.URI != "https://x.test/" || len(r.Headers["A"]) != 2 {
		t.Errorf("decoded %+v", r)
	}
	if err := json.Unmarshal([]byte(`[]`), &r); err == nil || !strings.Contains(err.Error(), "want one request, got an array of 0") {
		t.Errorf("empty array: err = %v", err)
	}
}

func TestTimeSpan(t *testing.T) {
	tests := []struct {
		d time.Duration
		s string
	}{
		{30 * time.Second, "00:00:30"},
		{90 * time.Minute, "01:30:00"},
		{26*time.Hour + 3*time.Second, "1.02:00:03"},
		{1500 * time.Millisecond, "00:00:01.5000000"},
		{100 * time.Nanosecond, "00:00:00.0000001"},
	}
	for _, tc := range tests {
		if got := formatTimeSpan(tc.d); got != tc.s {
			t.Errorf("formatTimeSpan(%v) = %q, want %q", tc.d, got, tc.s)
		}
		if got, err := parseTimeSpan(tc.s); err != nil || got != tc.d {
			t.Errorf("parseTimeSpan(%q) = %v, %v, want %v", tc.s, got, err, tc.d)
		}
	}
	if got, err := parseTimeSpan("00:00:01.5"); err != nil || got != 1500*time.Millisecond {
		t.Errorf("short fraction: %v, %v", got, err)
	}
	for _, bad := range []string{"", "30", "00:60:00", "1:2", "x.00:00:00", "00:00:00.", "00:00:00.12345678"} {
		if _, err := parseTimeSpan(bad); err == nil {
			t.Errorf("parseTimeSpan(%q) accepted", bad)
		}
	}
}
