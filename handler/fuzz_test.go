package handler

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzServers drives both servers (standalone routing and host
// invocations) with random requests: never a panic, never a 5xx from the
// handler itself, and every error is a JSON error body.
func FuzzServers(f *testing.F) {
	f.Add("GET", "/api/orchestrators/Orchestrator", "", `{"Data":{"req":{"Url":"http://localhost/api/orchestrators/x","Method":"POST","Query":{},"Headers":{},"Params":{"functionName":"x"}}},"Metadata":{}}`)
	f.Add("POST", "/api/durabletask/instances/a%2Fb", "code=1", `{"Data":{"req":"{\"Url\":1}"}}`)
	f.Add("DELETE", "/api/../api/x/{y}", "x=%zz", `null`)
	f.Add("PUT", "/", "", `{"Data":{"req":{"Url":"::::","Headers":{"A":"b"},"Query":"{bad"}}}`)
	root := writeApp(f, `{"version":"2.0"}`, map[string]string{
		"Start": httpFunctionJSON("orchestrators/{functionName}", `["post","get"]`, "$return"),
		"API":   httpFunctionJSON("durabletask/{*path}", `["get","post","delete"]`, "res"),
	})
	app, err := New(Options{AppRoot: root, Logger: discardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	echo := func(ctx context.Context, req *Request) *Response {
		return JSON(http.StatusOK, map[string]any{"params": req.Params, "query": req.Query, "len": len(req.Body)})
	}
	for _, name := range []string{"Start", "API"} {
		if err := app.HandleHTTP(name, echo); err != nil {
			f.Fatal(err)
		}
	}
	standalone, host := app.StandaloneHandler(), app.HostHandler()
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path+query, " \x00\r\n\t#") {
			return // net/http would reject these before any handler
		}
		if _, err := url.ParseRequestURI(path + "?" + query); err != nil {
			return // not a request line net/http would accept
		}
		req := httptest.NewRequest(method, "http://localhost:7071"+path+"?"+query, strings.NewReader(body))
		rec := httptest.NewRecorder()
		standalone.ServeHTTP(rec, req)
		checkReply(t, "standalone", rec)

		for _, fn := range []string{"/Start", "/API", "/Missing"} {
			hreq := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9999"+fn, strings.NewReader(body))
			hreq.Header.Set("Content-Type", "application/json; charset=utf-8")
			hrec := httptest.NewRecorder()
			host.ServeHTTP(hrec, hreq)
			if fn == "/Missing" {
				continue // an unknown function is refused (non-2xx), by design
			}
			if hrec.Code/100 != 2 || !strings.HasPrefix(hrec.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("host invocation of %s: %d %q", fn, hrec.Code, hrec.Body.String())
			}
			var reply map[string]json.RawMessage
			if err := json.Unmarshal(hrec.Body.Bytes(), &reply); err != nil {
				t.Fatalf("host reply is not JSON: %q", hrec.Body.String())
			}
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

func checkReply(t *testing.T, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("%s: %d %s", what, rec.Code, rec.Body.String())
	}
	if rec.Code >= 400 {
		var e ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Message == "" {
			t.Fatalf("%s: %d without a JSON error: %q", what, rec.Code, rec.Body.String())
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
