package durablehttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// seen is one request a test server received.
type seen struct {
	Method, Path, Host, Body string
	Header                   http.Header
}

// recorder is a test server that records its requests and answers with
// answer(n), n counting requests from 0.
type recorder struct {
	mu   sync.Mutex
	reqs []seen
	srv  *httptest.Server
}

func newRecorder(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		n := len(rec.reqs)
		rec.reqs = append(rec.reqs, seen{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Body: string(b), Header: r.Header.Clone()})
		rec.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) requests() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

func TestDoSendsTheRequestAndReturnsTheResponse(t *testing.T) {
	rec := newRecorder(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":7,"name":"Zoë"}`)
	})
	req := durable.HTTPActivityRequest{
		Method: "POST", URI: rec.srv.URL + "/items?x=1",
		Headers: durable.HTTPHeaders{"Content-Type": {"application/json"}, "x-trace": {"t1", "t2"}, "Host": {"api.example.test"}, "Content-Length": {"999"}},
		Content: `{"name":"Zoë"}`,
	}
	resp, err := New(Options{}).Do(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 201 || resp.Body != `{"id":7,"name":"Zoë"}` || resp.Header("content-type") != "application/json" {
		t.Errorf("response = %+v", resp)
	}
	if got := resp.Headers.Values("set-cookie"); len(got) != 2 || got[0] != "a=1" || got[1] != "b=2" {
		t.Errorf("Set-Cookie = %q", got)
	}
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("server saw %d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/items?x=1" || r.Body != `{"name":"Zoë"}` || r.Host != "api.example.test" {
		t.Errorf("server saw %s %s host %s body %q", r.Method, r.Path, r.Host, r.Body)
	}
	if r.Header.Get("Content-Type") != "application/json" || strings.Join(r.Header.Values("X-Trace"), ",") != "t1,t2" || r.Header.Get("Authorization") != "" {
		t.Errorf("server saw headers %v", r.Header)
	}
	if r.Header.Get("Content-Length") != strconv.Itoa(len(`{"name":"Zoë"}`)) {
		t.Errorf("Content-Length = %q, want the body's length", r.Header.Get("Content-Length"))
	}
}

func TestDoDefaultsAndStatuses(t *testing.T) {
	rec := newRecorder(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Location", "/status/1")
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "busy")
	})
	c := New(Options{})
	// A body without Content-Type goes as text/plain, as in Durable Functions.
	resp, err := c.Do(context.Background(), durable.HTTPActivityRequest{Method: "PUT", URI: rec.srv.URL, Content: "hello"})
	if err != nil || resp.StatusCode != 503 || resp.Body != "busy" {
		t.Fatalf("503: %+v, %v (a status is a response, not an error)", resp, err)
	}
	// A 202 comes back as it is; following it is the orchestrator's job.
	resp, err = c.Do(context.Background(), durable.HTTPActivityRequest{Method: "GET", URI: rec.srv.URL})
	if err != nil || resp.StatusCode != 202 || resp.Header("location") != "/status/1" || resp.Header("retry-after") != "3" {
		t.Fatalf("202: %+v, %v", resp, err)
	}
	if got := rec.requests()[0].Header.Get("Content-Type"); got != "text/plain" {
		t.Errorf("default Content-Type = %q, want text/plain", got)
	}
}

func TestDoFailures(t *testing.T) {
	big := strings.Repeat("x", 1025)
	rec := newRecorder(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			io.WriteString(w, big)
		case "/binary":
			w.Header().Set("Content-Type", "image/png")
			w.Write([]byte{0x89, 'P', 'N', 'G', 0xff, 0x00})
		case "/hang":
			<-r.Context().Done()
		}
	})
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	c := New(Options{MaxResponseBytes: 1024})
	tests := []struct {
		name   string
		req    durable.HTTPActivityRequest
		is     error
		substr string
	}{
		{"too large", durable.HTTPActivityRequest{Method: "GET", URI: rec.srv.URL + "/big"}, ErrResponseTooLarge, "status 200: response body too large: more than 1024 bytes (the limit)"},
		{"not text", durable.HTTPActivityRequest{Method: "GET", URI: rec.srv.URL + "/binary"}, ErrResponseNotText, `Content-Type "image/png", 6 bytes: response body is not UTF-8 text`},
		{"request timeout", durable.HTTPActivityRequest{Method: "GET", URI: rec.srv.URL + "/hang", Timeout: "00:00:00.2000000"}, nil, "no response within 200ms"},
		{"connection refused", durable.HTTPActivityRequest{Method: "GET", URI: closedURL}, nil, "connect"},
		{"invalid method", durable.HTTPActivityRequest{Method: "BREW", URI: rec.srv.URL}, durable.ErrInvalidHTTPRequest, `method: "BREW" is not supported`},
		{"newline in a header", durable.HTTPActivityRequest{Method: "GET", URI: rec.srv.URL, Headers: durable.HTTPHeaders{"X": {"a\nb"}}}, durable.ErrInvalidHTTPRequest, "control character U+000A"},
		{"bad timeout", durable.HTTPActivityRequest{Method: "GET", URI: rec.srv.URL, Timeout: "soon"}, durable.ErrInvalidHTTPRequest, `timeout: "soon" is not a TimeSpan`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Do(context.Background(), tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.substr) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("err = %v, want one containing %q (is %v)", err, tc.substr, tc.is)
			}
			var e *Error
			if !errors.Is(err, durable.ErrInvalidHTTPRequest) && (!errors.As(err, &e) || e.URL != tc.req.URI || e.ErrorType() != "HttpRequestException") {
				t.Errorf("err = %#v, want an *Error naming the URL", err)
			}
		})
	}
	t.Run("activity context cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := c.Do(ctx, durable.HTTPActivityRequest{Method: "GET", URI: rec.srv.URL + "/hang"})
			errc <- err
		}()
		// Cancel once the server holds the request.
		deadline := time.Now().Add(10 * time.Second)
		for !hasPath(rec.requests(), "/hang", 2) {
			if time.Now().After(deadline) {
				t.Fatal("the request never reached the server")
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

// hasPath reports whether at least n of reqs went to path.
func hasPath(reqs []seen, path string, n int) bool {
	count := 0
	for _, r := range reqs {
		if r.Path == path {
			count++
		}
	}
	return count >= n
}

// identityEndpoint is a loopback managed-identity endpoint speaking the
// App Service protocol that azidentity uses when IDENTITY_ENDPOINT and
// IDENTITY_HEADER are set: GET ?api-version=2019-08-01&resource=…
// [&client_id=…] with the X-IDENTITY-HEADER secret, answered with
// {"access_token","expires_on",…}.
type identityEndpoint struct {
	mu    sync.Mutex
	calls []string // "resource|client_id" per valid call
	srv   *httptest.Server
}

const identitySecret = "loopback-identity-secret"

func newIdentityEndpoint(t *testing.T) *identityEndpoint {
	t.Helper()
	ie := &identityEndpoint{}
	ie.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Header.Get("X-IDENTITY-HEADER") != identitySecret || q.Get("api-version") != "2019-08-01" || q.Get("resource") == "" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"bad request","header":%q,"query":%q}`, r.Header.Get("X-IDENTITY-HEADER"), r.URL.RawQuery)
			return
		}
		if strings.Contains(q.Get("resource"), "forbidden") {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"no identity for this resource"}`)
			return
		}
		ie.mu.Lock()
		ie.calls = append(ie.calls, q.Get("resource")+"|"+q.Get("client_id"))
		ie.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"access_token": "token-for-" + q.Get("resource") + "-" + q.Get("client_id"),
			"expires_on":   strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10),
			"resource":     q.Get("resource"),
			"token_type":   "Bearer",
		})
	}))
	t.Cleanup(ie.srv.Close)
	t.Setenv("IDENTITY_ENDPOINT", ie.srv.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", identitySecret)
	return ie
}

func (ie *identityEndpoint) seen() []string {
	ie.mu.Lock()
	defer ie.mu.Unlock()
	return append([]string(nil), ie.calls...)
}

// TestManagedIdentityToken acquires tokens from the loopback App Service
// endpoint through azidentity and sends them as bearer tokens; a refused
// token fails the request before it is sent. Resources are unique to this
// test because the token cache of the underlying library is process-wide.
func TestManagedIdentityToken(t *testing.T) {
	ie := newIdentityEndpoint(t)
	rec := newRecorder(t, func(int, http.ResponseWriter, *http.Request) {})
	c := New(Options{})
	res := "https://vault.example.test"
	ts := durable.ManagedIdentityToken(res)
	for i := 0; i < 2; i++ {
		if _, err := c.Do(context.Background(), durable.HTTPActivityRequest{Method: "GET", URI: rec.srv.URL, TokenSource: ts,
			Headers: durable.HTTPHeaders{"Authorization": {"Basic replaced"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Do(context.Background(), durable.HTTPActivityRequest{Method: "GET", URI: rec.srv.URL, TokenSource: ts.WithClientID("user-assigned-1")}); err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	want := []string{"Bearer token-for-" + res + "-", "Bearer token-for-" + res + "-", "Bearer token-for-" + res + "-user-assigned-1"}
	for i, w := range want {
		if got := reqs[i].Header.Get("Authorization"); got != w {
			t.Errorf("request %d: Authorization = %q, want %q", i, got, w)
		}
	}
	// The second system-assigned request is served from the token cache.
	if got := ie.seen(); strings.Join(got, ",") != res+"|,"+res+"|user-assigned-1" {
		t.Errorf("identity endpoint calls = %q", got)
	}

	_, err := c.Do(context.Background(), durable.HTTPActivityRequest{Method: "GET", URI: rec.srv.URL, TokenSource: durable.ManagedIdentityToken("https://forbidden.example.test")})
	if !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), `resource "https://forbidden.example.test"`) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("refused token: err = %v", err)
	}
	if n := len(rec.requests()); n != 3 {
		t.Errorf("target saw %d requests, want 3 (none for the refused token)", n)
	}
}

func TestScope(t *testing.T) {
	for in, want := range map[string]string{
		"https://storage.azure.com":            "https://storage.azure.com/.default",
		"https://management.core.windows.net/": "https://management.core.windows.net//.default",
		"api://app/.default":                   "api://app/.default",
	} {
		if got := Scope(in); got != want {
			t.Errorf("Scope(%q) = %q, want %q", in, got, want)
		}
	}
}
