package dashboard_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/handler/dashboard"
)

const key = "k3y"

// server serves an app root holding the repository's own host.json,
// DurableTaskAPI/function.json and DurableTaskUI/function.json, standalone
// with a function key: the dashboard bound as funcapp binds it, and a
// stand-in for the management API that answers 200 "data".
func server(t *testing.T) *httptest.Server {
	t.Helper()
	root := t.TempDir()
	for _, f := range []string{"host.json", "DurableTaskAPI/function.json", dashboard.Function + "/function.json"} {
		b, err := os.ReadFile(filepath.Join("..", "..", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app, err := handler.New(handler.Options{AppRoot: root, FunctionKey: key, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.HandleHTTP(dashboard.Function, dashboard.Serve); err != nil {
		t.Fatal(err)
	}
	if err := app.HandleHTTP("DurableTaskAPI", func(context.Context, *handler.Request) *handler.Response {
		return &handler.Response{Body: []byte("data")}
	}); err != nil {
		t.Fatal(err)
	}
	app.SetRootRedirect("/api/durabletask/ui/")
	srv := httptest.NewServer(app.StandaloneHandler())
	t.Cleanup(srv.Close)
	return srv
}

func TestServe(t *testing.T) {
	srv := server(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		method, path string
		header       map[string]string
		status       int
		contentType  string // prefix; "" when not checked
		location     string
		bodyHas      string
		csp          bool
	}{
		// The files, without a key: the page opens and then asks for one.
		{"GET", "/api/durabletask/ui/", nil, 200, "text/html; charset=utf-8", "", `<script type="module" src="app.js">`, true},
		{"GET", "/api/durabletask/ui/index.html", nil, 200, "text/html; charset=utf-8", "", "<title>Durable Functions dashboard</title>", true},
		{"GET", "/api/durabletask/ui/app.js", nil, 200, "text/javascript; charset=utf-8", "", "x-functions-key", true},
		{"GET", "/api/durabletask/ui/style.css", nil, 200, "text/css; charset=utf-8", "", ".timeline", true},
		// Case-insensitive route, as the Functions host's.
		{"GET", "/API/DurableTask/UI/style.css", nil, 200, "text/css; charset=utf-8", "", ".timeline", true},
		// Without the trailing slash: redirected, so relative links resolve.
		{"GET", "/api/durabletask/ui", nil, 301, "", "/api/durabletask/ui/", "", false},
		// "/" leads to the dashboard in standalone mode.
		{"GET", "/", nil, 302, "", "/api/durabletask/ui/", "", false},
		{"POST", "/", nil, 404, "application/json", "", "NotFound", false},
		// Unknown files and other methods.
		{"GET", "/api/durabletask/ui/nope.js", nil, 404, "application/json", "", "the dashboard has no file nope.js", false},
		{"GET", "/api/durabletask/ui/../DurableTaskAPI/function.json", nil, 404, "application/json", "", "", false},
		{"GET", "/api/durabletask/ui/%2e%2e/dashboard.go", nil, 404, "application/json", "", "", false},
		{"POST", "/api/durabletask/ui/app.js", nil, 401, "application/json", "", "function key", false},
		{"POST", "/api/durabletask/ui/app.js", map[string]string{"x-functions-key": key}, 200, "", "", "data", false},
		// Data calls need the key.
		{"GET", "/api/durabletask/instances", nil, 401, "application/json", "", "a valid function key is required", false},
		{"GET", "/api/durabletask/instances", map[string]string{"x-functions-key": "wrong"}, 401, "application/json", "", "", false},
		{"GET", "/api/durabletask/instances", map[string]string{"x-functions-key": key}, 200, "", "", "data", false},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); tc.contentType != "" && !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want %q", ct, tc.contentType)
			}
			if loc := resp.Header.Get("Location"); loc != tc.location {
				t.Errorf("Location %q, want %q", loc, tc.location)
			}
			if !strings.Contains(string(b), tc.bodyHas) {
				t.Errorf("body lacks %q: %.200s", tc.bodyHas, b)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			if tc.csp {
				if csp != dashboard.CSP || !strings.HasPrefix(csp, "default-src 'self'") {
					t.Errorf("Content-Security-Policy %q, want %q", csp, dashboard.CSP)
				}
				if n := resp.Header.Get("X-Content-Type-Options"); n != "nosniff" {
					t.Errorf("X-Content-Type-Options %q, want nosniff", n)
				}
			}
		})
	}
}

// TestServeDirect calls Serve as the Functions host's invocations do: the
// path arrives only in the route parameter, and other methods are refused
// by Serve itself.
func TestServeDirect(t *testing.T) {
	for _, tc := range []struct {
		method, param string
		status        int
	}{
		{"GET", "app.js", 200},
		{"GET", "", 200},
		{"GET", "/style.css", 200},
		{"GET", "static/app.js", 404},
		{"GET", "../dashboard.go", 404},
		{"HEAD", "app.js", 200},
		{"DELETE", "app.js", 405},
	} {
		req := &handler.Request{Method: tc.method, Params: map[string]string{dashboard.RouteParam: tc.param}, Header: http.Header{}}
		resp := dashboard.Serve(t.Context(), req)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %q: status %d, want %d: %s", tc.method, tc.param, resp.StatusCode, tc.status, resp.Body)
		}
		if tc.method == "HEAD" && (len(resp.Body) != 0 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8") {
			t.Errorf("HEAD: %d bytes of body, Content-Type %q", len(resp.Body), resp.Header.Get("Content-Type"))
		}
		if tc.status == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("405 without Allow: %v", resp.Header)
		}
	}
}

// TestNoDataInFiles guards the page's security rules in its source: no
// innerHTML or other HTML parsing of strings, no inline handlers, no
// script from elsewhere, and the key only in a header.
func TestNoDataInFiles(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		b, err := os.ReadFile(filepath.Join("static", name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "http://", "https://", " onclick=", "javascript:"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
	js, _ := os.ReadFile(filepath.Join("static", "app.js"))
	if strings.Contains(string(js), "code=") {
		t.Error("app.js puts a code= parameter in a URL: the key goes in the x-functions-key header only")
	}
}
