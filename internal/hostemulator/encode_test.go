package hostemulator

import (
	"encoding/json"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEncodeValue(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"string is double-encoded", "hello", `"\"hello\""`},
		{"no HTML escaping", "<a&b>", `"\"<a&b>\""`},
		{"integer", int64(4), `"4"`},
		{"bool", false, `"false"`},
		{"nil", nil, `"null"`},
		{"array", []int{1, 2}, `"[1,2]"`},
		{"bytes are base64", []byte("hi"), `"aGk="`},
		{"time keeps its offset, no fraction", time.Date(2025, 1, 1, 10, 0, 0, 999, time.FixedZone("", 3600)), `"2025-01-01T10:00:00+01:00"`},
		{"map is nested", map[string]any{"a": 1}, `{"a":1}`},
		{"raw object is nested", json.RawMessage(`{ "a" : 1 }`), `{"a":1}`},
		{"raw scalar is carried as text", json.RawMessage(` "x" `), `"\"x\""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeValue(tt.in)
			if err != nil || string(got) != tt.want {
				t.Fatalf("encodeValue(%v) = %s, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFoldMapAndPromotion(t *testing.T) {
	m := newFoldMap()
	m.set("Id", "queue-id")
	m.set("DequeueCount", int64(1))
	m.set("QueueTrigger", "text")
	promoteJSON(m, ` {"id":"mine","OP":"run","n":1.5,"yes":true,"no":false,"nil":null,"obj":{"x":[1]},"arr":[1]} `)
	promoteJSON(m, `not json {`)
	promoteJSON(m, `["a"]`)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Id":"mine","DequeueCount":1,"QueueTrigger":"text","OP":"run","n":"1.5","yes":"True","no":"False","nil":null,"obj":{"x":[1]}}`
	if string(b) != want {
		t.Fatalf("map = %s\nwant  %s", b, want)
	}
	md, err := encodeMetadata(m, "Fn")
	if err != nil {
		t.Fatal(err)
	}
	m.delete("ID")
	if slices.Contains(m.keys, "Id") {
		t.Error("delete is case-insensitive")
	}
	if got := strings.Join(md.keys, ","); got != "Id,DequeueCount,OP,n,yes,no,obj,sys" {
		t.Errorf("metadata keys = %s (trigger keys and nulls must be dropped)", got)
	}
	enc, _ := json.Marshal(md.vals["id"])
	if string(enc) != `"\"mine\""` {
		t.Errorf("Id = %s", enc)
	}
}

func TestIsDotNetBase64(t *testing.T) {
	tests := map[string]bool{
		"test": true, "true": true, "null": true, "1234": true, "ping": true, "aGVsbG8=": true, "aGk=": true,
		"aGVs bG8=": true, "aGVs\r\nbG8=": true, "YQ==": true,
		"": false, "hello": false, "abc": false, "a===": false, "ab=c": false, "ab-_": false,
		`{"a":1}`: false, `"quoted"`: false, "hello world": false,
	}
	for in, want := range tests {
		if got := isDotNetBase64(in); got != want {
			t.Errorf("isDotNetBase64(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestExpandArgumentAndSplit(t *testing.T) {
	env := map[string]string{"PORT": "7000", "NAME": "a b"}
	var warned []string
	warn := func(n string) { warned = append(warned, n) }
	tests := []struct {
		in, want string
	}{
		{"--port=%PORT%", "--port=7000"},
		{"%NAME%", "a b"},
		{"%UNSET%x", "x"},
		{"100%", "100%"},
		{"%%", "%%"},
		{"%PORT%%PORT%", "70007000"},
	}
	for _, tt := range tests {
		if got := expandArgument(tt.in, env, warn); got != tt.want {
			t.Errorf("expandArgument(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if strings.Join(warned, ",") != "UNSET" {
		t.Errorf("warned = %v", warned)
	}

	split := []struct {
		in   string
		want []string
	}{
		{` -a  b `, []string{"-a", "b"}},
		{`"two words" x`, []string{"two words", "x"}},
		{`say \"hi\"`, []string{"say", `"hi"`}},
		{`""`, []string{""}},
		{``, nil},
	}
	for _, tt := range split {
		if got := splitCommandLine(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("splitCommandLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBuildEnv(t *testing.T) {
	env := buildEnv(
		[]string{"PATH=/bin", "SHELL_SET=shell", "=ignored", "EMPTY="},
		map[string]string{"SHELL_SET": "local", "LOCAL": "local", "DEFAULTED": "local"},
		[]string{"LOCAL=extra", "SHELL_SET=extra", "FIXED=extra"},
		map[string]string{"DEFAULTED": "default", "NEW_DEFAULT": "default"},
		map[string]string{"FIXED": "fixed"},
	)
	want := map[string]string{
		"PATH": "/bin", "EMPTY": "", "SHELL_SET": "extra", "LOCAL": "extra", "DEFAULTED": "local", "NEW_DEFAULT": "default", "FIXED": "fixed",
	}
	if !maps.Equal(env, want) {
		t.Fatalf("env = %v\nwant  %v", env, want)
	}
	if got := envList(map[string]string{"B": "2", "A": "1"}); !slices.Equal(got, []string{"A=1", "B=2"}) {
		t.Errorf("envList = %v", got)
	}
}

func TestResolveExecutable(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "handler")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := resolveExecutable(dir, "handler"); err != nil || got != exe {
		t.Errorf("relative existing file = %q, %v", got, err)
	}
	if got, err := resolveExecutable(dir, "sh"); err != nil || !filepath.IsAbs(got) {
		t.Errorf("command on PATH = %q, %v", got, err)
	}
	if got, err := resolveExecutable(dir, "/abs/path"); err != nil || got != "/abs/path" {
		t.Errorf("absolute = %q, %v", got, err)
	}
	if _, err := resolveExecutable(dir, "definitely-not-a-command-xyz"); err == nil || !strings.Contains(err.Error(), "neither a file under") {
		t.Errorf("missing = %v", err)
	}
	if resolveDir("/root", "") != "/root" || resolveDir("/root", "w") != "/root/w" || resolveDir("/root", "/abs") != "/abs" {
		t.Error("resolveDir")
	}
}

func TestPushErrorEvent(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		previous []time.Duration // ages of earlier events
		wantLen  int
		wantStop bool
	}{
		{"first error", nil, 1, false},
		{"second error", []time.Duration{time.Minute}, 2, false},
		{"third error in a row stops", []time.Duration{20 * time.Minute, 10 * time.Minute}, 3, true},
		{"a long gap starts a new series", []time.Duration{50 * time.Minute, 31 * time.Minute}, 1, false},
	}
	for _, tt := range tests {
		var events []time.Time
		for _, age := range tt.previous {
			events = append(events, now.Add(-age))
		}
		got, stop := pushErrorEvent(events, now)
		if len(got) != tt.wantLen || stop != tt.wantStop {
			t.Errorf("%s: len %d stop %v, want %d %v", tt.name, len(got), stop, tt.wantLen, tt.wantStop)
		}
	}
}

func TestLineWriter(t *testing.T) {
	book := newLogBook(discardLogger())
	w := &lineWriter{book: book, source: SourceStderr, pid: func() int { return 7 }}
	for _, chunk := range []string{"first li", "ne\r\nWARNING: x\nfatal", " error"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	w.flush()
	lines := book.snapshot()
	var got []string
	for _, l := range lines {
		got = append(got, l.Level.String()+" "+l.Text)
		if l.PID != 7 || l.Source != SourceStderr {
			t.Errorf("line %v", l)
		}
	}
	if want := []string{"ERROR first line", "WARN WARNING: x", "ERROR fatal error"}; !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
