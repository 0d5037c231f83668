package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

// TestBindHTTPLeavesNoFunctionUnbound builds the bench's handler over the
// module root, as the bench does, and serves it: no function is reported
// without Go code (the dashboard's DurableTaskUI included), and the
// dashboard's page is served.
func TestBindHTTPLeavesNoFunctionUnbound(t *testing.T) {
	root, err := azuritetest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, err := handler.New(handler.Options{AppRoot: root, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := bindHTTP(h, nil, nil, durableapi.New(nil, durableapi.Options{})); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Serve warns about unbound functions first, then stops at once.
	if err := h.Serve(ctx, ln, h.StandaloneHandler()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "no Go code bound") {
		t.Fatalf("unbound functions reported:\n%s", logs.String())
	}
	rec := httptest.NewRecorder()
	h.StandaloneHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/durabletask/ui/", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<html") {
		t.Fatalf("GET /api/durabletask/ui/: %d %.200s", rec.Code, rec.Body.String())
	}
}
