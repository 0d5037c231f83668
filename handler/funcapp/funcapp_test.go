package funcapp

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durablehttp"
)

// TestNewRegistersTheHTTPActivity: every app has the built-in activity
// behind durable.CallHTTP, unless it brings its own under that name.
func TestNewRegistersTheHTTPActivity(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "host.json"), []byte(`{"version":"2.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{AppRoot: root, Storage: developmentStorageShortcut, HubName: "FuncappHub"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	app, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	err = app.Registry.Add(durablehttp.Activity())
	if err == nil || !strings.Contains(err.Error(), `activity "BuiltIn::HttpActivity" registered twice`) {
		t.Fatalf("adding the built-in activity again: err = %v, want a duplicate (New registered it)", err)
	}

	own := durable.NewActivity(durable.HTTPActivityName, func(context.Context, durable.HTTPActivityRequest) (durable.HTTPResponse, error) {
		return durable.HTTPResponse{StatusCode: 299}, nil
	})
	if _, err := New(cfg, log, own); err != nil {
		t.Fatalf("an app's own %s: %v", durable.HTTPActivityName, err)
	}
}
