package hostemulator

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Log sources.
const (
	// SourceStdout marks a line the handler wrote to stdout (Info).
	SourceStdout = "stdout"
	// SourceStderr marks a line the handler wrote to stderr (Error, or Warn
	// when it contains "warn").
	SourceStderr = "stderr"
	// SourceFunction marks an entry of an invocation reply's Logs (Info).
	SourceFunction = "function"
	// SourceHost marks the emulator's own events (start, exit, restart,
	// invocation failures).
	SourceHost = "host"
)

// maxLogLines bounds the lines Logs keeps; older lines are dropped.
const maxLogLines = 20000

// LogLine is one captured log line.
type LogLine struct {
	// Time is when the line was captured.
	Time time.Time
	// Source is SourceStdout, SourceStderr, SourceFunction or SourceHost.
	Source string
	// Level is the level the host would log the line at.
	Level slog.Level
	// Text is the line without its line break.
	Text string
	// PID is the handler process that wrote the line (0 for other sources).
	PID int
	// Function names the function of SourceFunction lines.
	Function string
}

// String formats the line for test failure messages.
func (l LogLine) String() string {
	return fmt.Sprintf("%s %s %s %s", l.Time.Format("15:04:05.000"), l.Source, l.Level, l.Text)
}

// logBook stores log lines and wakes waiters when one arrives.
type logBook struct {
	sink *slog.Logger

	mu      sync.Mutex
	lines   []LogLine
	changed chan struct{}
}

func newLogBook(sink *slog.Logger) *logBook {
	return &logBook{sink: sink, changed: make(chan struct{})}
}

func (b *logBook) add(l LogLine) {
	if l.Time.IsZero() {
		l.Time = time.Now()
	}
	attrs := []any{"source", l.Source}
	if l.PID != 0 {
		attrs = append(attrs, "pid", l.PID)
	}
	if l.Function != "" {
		attrs = append(attrs, "function", l.Function)
	}
	b.sink.Log(context.Background(), l.Level, l.Text, attrs...)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, l)
	if len(b.lines) > maxLogLines {
		b.lines = append(b.lines[:0:0], b.lines[len(b.lines)-maxLogLines:]...)
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *logBook) hostf(level slog.Level, format string, args ...any) {
	b.add(LogLine{Source: SourceHost, Level: level, Text: fmt.Sprintf(format, args...)})
}

func (b *logBook) snapshot() []LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]LogLine(nil), b.lines...)
}

// wait returns the first stored line matching match, waiting for one to
// arrive until ctx ends.
func (b *logBook) wait(ctx context.Context, match func(LogLine) bool) (LogLine, error) {
	for {
		b.mu.Lock()
		for _, l := range b.lines {
			if match(l) {
				b.mu.Unlock()
				return l, nil
			}
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return LogLine{}, fmt.Errorf("wait for log line: %w", ctx.Err())
		}
	}
}

// lineWriter splits a process output stream into lines.
type lineWriter struct {
	book   *logBook
	source string
	pid    func() int

	mu  sync.Mutex
	buf bytes.Buffer
}

// Write buffers p and emits every complete line.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		i := bytes.IndexByte(w.buf.Bytes(), '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.buf.Next(i + 1))
		w.emit(strings.TrimRight(line, "\r\n"))
	}
}

// flush emits a final line without a newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 0 {
		w.emit(strings.TrimRight(w.buf.String(), "\r\n"))
		w.buf.Reset()
	}
}

func (w *lineWriter) emit(text string) {
	level := slog.LevelInfo
	if w.source == SourceStderr {
		level = slog.LevelError
		if strings.Contains(strings.ToLower(text), "warn") {
			level = slog.LevelWarn
		}
	}
	w.book.add(LogLine{Source: w.source, Level: level, Text: text, PID: w.pid()})
}
