package handler

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestListenAddress(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		addr     string
		wantMode Mode
		wantAddr string
		wantErr  string
	}{
		{"standalone default", nil, "", ModeStandalone, "127.0.0.1:7071", ""},
		{"standalone flag", nil, ":8080", ModeStandalone, ":8080", ""},
		{"host port", map[string]string{EnvPort: "5123"}, ":8080", ModeHost, "127.0.0.1:5123", ""},
		{"legacy host port", map[string]string{EnvLegacyPort: " 5124 "}, "", ModeHost, "127.0.0.1:5124", ""},
		{"new name wins", map[string]string{EnvPort: "1", EnvLegacyPort: "2"}, "", ModeHost, "127.0.0.1:1", ""},
		{"bad port", map[string]string{EnvPort: "http"}, "", ModeHost, "", "not a valid port"},
		{"port out of range", map[string]string{EnvPort: "70000"}, "", ModeHost, "", "not a valid port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode, addr, err := listenAddress(func(k string) string { return tt.env[k] }, tt.addr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || mode != tt.wantMode || addr != tt.wantAddr {
				t.Fatalf("= %v %q %v, want %v %q", mode, addr, err, tt.wantMode, tt.wantAddr)
			}
		})
	}
	if ModeHost.String() != "host" || ModeStandalone.String() != "standalone" {
		t.Error("Mode.String")
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	app := newTestApp(t, `{}`, Options{})
	entered, release := make(chan struct{}), make(chan struct{})
	must(t, app.HandleHTTP("Nil", func(context.Context, *Request) *Response {
		close(entered)
		<-release
		return JSON(200, "finished")
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- app.Serve(ctx, ln, app.StandaloneHandler()) }()

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/api/nil")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-entered
	cancel() // shutdown starts while the request is in flight
	close(release)
	r := <-done
	if r.err != nil || r.status != 200 || r.body != `"finished"` {
		t.Fatalf("in-flight request = %+v", r)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v, want nil after cancellation", err)
	}
}

func TestRunErrors(t *testing.T) {
	app := newTestApp(t, `{}`, Options{})
	t.Setenv(EnvPort, "")
	t.Setenv(EnvLegacyPort, "")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = app.Run(context.Background(), busy.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "listen on "+busy.Addr().String()) {
		t.Fatalf("Run on a busy address = %v", err)
	}
	t.Setenv(EnvPort, "nope")
	if err := app.Run(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "FUNCTIONS_CUSTOMHANDLER_PORT") {
		t.Fatalf("Run with a bad port = %v", err)
	}
}

func TestHandleHTTPErrors(t *testing.T) {
	root := writeApp(t, `{}`, map[string]string{
		"Http":   httpFunctionJSON("h", `[]`, "res"),
		"NoOut":  `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"}]}`,
		"Queued": `{"bindings":[{"type":"queueTrigger","direction":"in","name":"m"}]}`,
	})
	logger, _ := testLogger()
	app, err := New(Options{AppRoot: root, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	noop := func(context.Context, *Request) *Response { return nil }
	tests := []struct {
		name    string
		fn      HTTPFunc
		wantErr string
	}{
		{"Http", noop, ""},
		{"http", noop, ""}, // case-insensitive
		{"Missing", noop, "no function.json"},
		{"Queued", noop, `trigger is "queueTrigger", not httpTrigger`},
		{"NoOut", noop, "no http output binding"},
		{"Http", nil, "nil function"},
	}
	for _, tt := range tests {
		err := app.HandleHTTP(tt.name, tt.fn)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("HandleHTTP(%q) = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
	if err := app.HandleInvocation("Http", func(context.Context, *Invocation) (*InvocationResult, error) { return nil, nil }); err == nil {
		t.Error("HandleInvocation on an httpTrigger succeeded")
	}
	fns := app.Functions()
	if len(fns) != 3 || fns[0].Name != "Http" || fns[0].AuthLevel != "anonymous" || fns[0].Route != "h" || fns[1].AuthLevel != "function" {
		t.Errorf("Functions = %+v", fns)
	}
}

func TestNewErrors(t *testing.T) {
	_, err := New(Options{AppRoot: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "host.json") {
		t.Fatalf("New without host.json = %v", err)
	}
	root := writeApp(t, `{}`, map[string]string{"Bad": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"runtime/x"}]}`})
	t.Setenv(EnvAppRoot, root)
	_, err = New(Options{})
	if err == nil || !strings.Contains(err.Error(), "Bad") || !strings.Contains(err.Error(), "built-in routes") {
		t.Fatalf("New from FUNCTIONS_APP_ROOT_PATH = %v", err)
	}
}

func TestNewHostLogger(t *testing.T) {
	var out, errOut bytes.Buffer
	log := NewHostLogger(&out, &errOut, slog.LevelInfo).With("app", "x")
	log.Debug("hidden")
	log.Info("hello")
	log.Warn("careful")
	log.Error("broken")
	if s := out.String(); !strings.Contains(s, "msg=hello") || strings.Contains(s, "careful") || strings.Contains(s, "hidden") || !strings.Contains(s, "app=x") {
		t.Errorf("stdout = %q", s)
	}
	if s := errOut.String(); !strings.Contains(s, "level=WARN msg=careful") || !strings.Contains(s, "level=ERROR msg=broken") || strings.Contains(s, "hello") {
		t.Errorf("stderr = %q", s)
	}
}
