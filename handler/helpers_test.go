package handler

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// writeApp creates an app root with the given host.json and function.json
// files (folder name -> content) and returns its path.
func writeApp(t testing.TB, hostJSON string, functions map[string]string) string {
	t.Helper()
	root := t.TempDir()
	if hostJSON != "" {
		if err := os.WriteFile(filepath.Join(root, "host.json"), []byte(hostJSON), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range functions {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "function.json"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// httpFunctionJSON returns a function.json for an httpTrigger "req" with an
// http output named out.
func httpFunctionJSON(route, methods, out string) string {
	return `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous","route":"` + route +
		`","methods":` + methods + `},{"type":"http","direction":"out","name":"` + out + `"}]}`
}

// testLogger returns a logger writing into a buffer the test can inspect.
func testLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*syncBuffer)(nil)
