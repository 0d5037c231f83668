package handler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// TestTraceContextReachesTheFunction: the W3C trace context of the request
// a function serves is its context's remote parent, in each way a request
// arrives: an invocation payload's HTTP request (Data.req.Headers; the
// host's own traceparent on its call to the handler is ignored), a request
// the host forwards, and a standalone request. A request without one gives
// no span context.
func TestTraceContextReachesTheFunction(t *testing.T) {
	const (
		caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		host   = "00-11111111111111111111111111111111-2222222222222222-01"
	)
	got := make(chan trace.SpanContext, 1)
	record := func(ctx context.Context, _ *Request) *Response {
		got <- trace.SpanContextFromContext(ctx)
		return nil
	}
	payload := func(headers string) string {
		return `{"Data":{"req":{"Url":"http://localhost:7071/api/orchestrators/Flow","Method":"POST","Query":{},` +
			`"Headers":{` + headers + `},"Params":{"functionName":"Flow"},"Body":""}},"Metadata":{}}`
	}
	tests := []struct {
		name      string
		hostJSON  string
		request   func() *http.Request
		handler   func(*App) http.Handler
		wantTrace string
		wantState string
	}{
		{"invocation", `{}`, func() *http.Request {
			r := httptest.NewRequest("POST", "http://127.0.0.1:5000/Start",
				strings.NewReader(payload(`"traceparent":["`+caller+`"],"tracestate":["congo=t61rcWkgMzE"]`)))
			r.Header.Set("traceparent", host)
			return r
		}, (*App).HostHandler, "4bf92f3577b34da6a3ce929d0e0e4736", "congo=t61rcWkgMzE"},
		{"invocation without one", `{}`, func() *http.Request {
			r := httptest.NewRequest("POST", "http://127.0.0.1:5000/Start", strings.NewReader(payload(`"Host":["localhost:7071"]`)))
			r.Header.Set("traceparent", host)
			return r
		}, (*App).HostHandler, "", ""},
		{"forwarded", `{"customHandler":{"enableForwardingHttpRequest":true}}`, func() *http.Request {
			r := httptest.NewRequest("POST", "http://127.0.0.1:5000/api/orchestrators/Flow", nil)
			r.Header.Set("Traceparent", caller)
			return r
		}, (*App).HostHandler, "4bf92f3577b34da6a3ce929d0e0e4736", ""},
		{"standalone", `{}`, func() *http.Request {
			r := httptest.NewRequest("POST", "http://127.0.0.1:7071/api/orchestrators/Flow", nil)
			r.Header.Set("traceparent", caller)
			return r
		}, (*App).StandaloneHandler, "4bf92f3577b34da6a3ce929d0e0e4736", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := newTestApp(t, tt.hostJSON, Options{})
			if err := app.HandleHTTP("Start", record); err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			tt.handler(app).ServeHTTP(rec, tt.request())
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			sc := <-got
			if tt.wantTrace == "" {
				if sc.IsValid() {
					t.Errorf("span context %v, want none", sc)
				}
				return
			}
			if sc.TraceID().String() != tt.wantTrace || sc.SpanID().String() != "00f067aa0ba902b7" || !sc.IsSampled() || !sc.IsRemote() ||
				sc.TraceState().String() != tt.wantState {
				t.Errorf("span context %v (state %q), want the caller's %s (state %q)", sc, sc.TraceState().String(), caller, tt.wantState)
			}
		})
	}
}
