package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/internal/enginetest"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
)

// appURL serves the management API of an engine on the in-memory backend,
// running Echo, and returns the app's base URL.
func appURL(t *testing.T) string {
	t.Helper()
	be, err := memory.New(memory.Options{HubName: "CliPurge"})
	if err != nil {
		t.Fatal(err)
	}
	echo := durable.NewOrchestrator("Echo", func(_ *durable.Context, s string) (string, error) { return s, nil })
	_, _, c := enginetest.Start(t, engine.Options{Backend: be}, echo)
	api := durableapi.New(c, durableapi.Options{BasePath: apiBase, HubName: be.HubName(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := inProcess{api}.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestPurgeAsksOnATerminal: a purge by filter counts the instances, asks,
// and purges only on "y".
func TestPurgeAsksOnATerminal(t *testing.T) {
	url := appURL(t)
	cli := func(stdin string, args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		e := newEnv(strings.NewReader(stdin), &out, &errb, func(string) string { return "" })
		e.stdinTTY = true
		code := run(context.Background(), append([]string{"--url", url}, args...), e)
		return out.String(), errb.String(), code
	}
	for _, id := range []string{"p-1", "p-2"} {
		if out, errs, code := cli("", "start", "Echo", "--id", id, "--input", `"x"`); code != 0 || strings.TrimSpace(out) != id {
			t.Fatalf("start: %d %q %q", code, out, errs)
		}
		if _, errs, code := cli("", "watch", "--interval", "20ms", id); code != 0 {
			t.Fatalf("watch: %d %q", code, errs)
		}
	}
	out, errs, code := cli("n\n", "purge", "--prefix", "p-")
	if code != exitError || out != "" || errs != "Purge 2 finished instance(s) (2 Completed) and their history? [y/N] durable purge: purge cancelled; nothing purged\n" {
		t.Fatalf("answer n: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if out, _, _ := cli("", "list", "--prefix", "p-"); strings.Count(out, "Completed") != 2 {
		t.Fatalf("after answering n: %s", out)
	}
	out, errs, code = cli("y\n", "purge", "--prefix", "p-")
	if code != 0 || out != "purged 2 instance(s)\n" || !strings.HasPrefix(errs, "Purge 2 finished instance(s)") {
		t.Fatalf("answer y: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if out, _, _ := cli("", "list", "--prefix", "p-"); out != "no instances match\n" {
		t.Fatalf("after purge: %s", out)
	}
}
