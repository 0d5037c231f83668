package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runCLI runs the command line in process with an empty environment.
func runCLI(env map[string]string, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	e := newEnv(strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
	code = run(context.Background(), args, e)
	return out.String(), errb.String(), code
}

func TestUsageAndExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // a substring of stdout ("" = stdout must be empty)
		stderrLine string // a substring of the one stderr line ("" = stderr must be empty)
	}{
		{"help", []string{"help"}, 0, "Commands:", ""},
		{"-h", []string{"-h"}, 0, "Global flags", ""},
		{"help of a command", []string{"help", "purge"}, 0, "Usage: durable purge", ""},
		{"--help of a command", []string{"list", "--help"}, 0, "--created-from TIME", ""},
		{"entity help", []string{"entity", "--help"}, 0, "durable entity signal NAME KEY OPERATION", ""},
		{"unknown command", []string{"frob"}, 2, "", `durable: unknown command "frob"`},
		{"help of an unknown command", []string{"help", "frob"}, 2, "", `unknown command "frob"`},
		{"unknown flag", []string{"list", "--frob"}, 2, "", "durable list: flag provided but not defined: --frob"},
		{"bad status", []string{"list", "--status", "Running,Runing"}, 2, "", `unknown status "Runing"`},
		{"bad time", []string{"list", "--created-to", "tomorrow"}, 2, "", `"tomorrow" is not a time`},
		{"times out of order", []string{"list", "--created-from", "2026-02-01", "--created-to", "2026-01-01"}, 2, "", "--created-to 2026-01-01T00:00:00Z is before --created-from"},
		{"bad top", []string{"list", "--top", "0"}, 2, "", "--top 0: want a positive number"},
		{"list takes no arguments", []string{"list", "x"}, 2, "", `too many arguments: "x"`},
		{"show without ID", []string{"show"}, 2, "", "missing arguments: want show ID"},
		{"show with two IDs", []string{"show", "a", "b"}, 2, "", `too many arguments: "b"`},
		{"start input not JSON", []string{"start", "Echo", "--input", "{x"}, 2, "", `"{x" is not JSON`},
		{"raise without event", []string{"raise", "id"}, 2, "", "missing arguments: want raise ID EVENT"},
		{"purge with nothing", []string{"purge"}, 2, "", "give an instance ID, or filters"},
		{"purge with ID and filter", []string{"purge", "id", "--status", "Completed"}, 2, "", "give an instance ID or filters, not both"},
		{"watch bad interval", []string{"watch", "id", "--interval", "0s"}, 2, "", "--interval 0s: want a positive duration"},
		{"entity without subcommand", []string{"entity"}, 2, "", "missing subcommand"},
		{"entity unknown subcommand", []string{"entity", "frob"}, 2, "", `unknown entity subcommand "frob"`},
		{"entity clean in API mode", []string{"entity", "clean", "--remove-empty"}, 2, "", "needs --storage"},
		{"bad URL", []string{"--url", "ftp://x", "list"}, 2, "", `--url "ftp://x": want an absolute http or https URL`},
		{"bad connection string", []string{"--storage", "nonsense", "list"}, 2, "", "storage mode: invalid storage connection string"},
		{"unreachable app", []string{"--url", "http://127.0.0.1:1", "show", "x"}, 1, "", "durable show: cannot reach http://127.0.0.1:1: connection refused"},
		{"flags after arguments", []string{"show", "x", "--url", "http://127.0.0.1:1/"}, 1, "", "cannot reach http://127.0.0.1:1/: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(nil, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if tt.stdout == "" && stdout != "" || !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout %q, want it to contain %q", stdout, tt.stdout)
			}
			if tt.stderrLine == "" {
				if stderr != "" {
					t.Errorf("stderr %q, want none", stderr)
				}
				return
			}
			if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.stderrLine) {
				t.Errorf("stderr %q, want one line containing %q", stderr, tt.stderrLine)
			}
		})
	}
}

func TestNoCommandPrintsUsageToStderr(t *testing.T) {
	stdout, stderr, code := runCLI(nil)
	if code != exitUsage || stdout != "" || !strings.Contains(stderr, "Commands:") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestParseMixesFlagsAndArguments(t *testing.T) {
	tests := []struct {
		args []string
		pos  []string
		json bool
		url  string
	}{
		{[]string{"id1", "--json"}, []string{"id1"}, true, "http://127.0.0.1:7071"},
		{[]string{"--json", "id1"}, []string{"id1"}, true, "http://127.0.0.1:7071"},
		{[]string{"id1", "--url", "http://h:1", "ev"}, []string{"id1", "ev"}, false, "http://h:1"},
		{[]string{"--", "--json", "x"}, []string{"--json", "x"}, false, "http://127.0.0.1:7071"},
	}
	for _, tt := range tests {
		e := newEnv(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}, func(string) string { return "" })
		e.g.url = "http://127.0.0.1:7071"
		pos, err := e.parse(e.flagSet("raise"), lookup("raise"), tt.args, 0, -1)
		if err != nil || strings.Join(pos, "|") != strings.Join(tt.pos, "|") || e.g.json != tt.json || e.g.url != tt.url {
			t.Errorf("parse(%q) = %q, %v; json %v url %q; want %q json %v url %q", tt.args, pos, err, e.g.json, e.g.url, tt.pos, tt.json, tt.url)
		}
	}
}

func TestKeyAndHubFromEnvironment(t *testing.T) {
	var out bytes.Buffer
	e := newEnv(strings.NewReader(""), &out, &out, func(k string) string {
		return map[string]string{"DURABLE_FUNCTION_KEY": "k1", "DURABLE_TASK_HUB": "Hub7"}[k]
	})
	if code := run(context.Background(), []string{"help"}, e); code != 0 {
		t.Fatal(code)
	}
	if e.g.key != "k1" || e.g.hub != "Hub7" {
		t.Fatalf("key %q hub %q", e.g.key, e.g.hub)
	}
	if strings.Contains(out.String(), "k1") {
		t.Fatalf("help shows the key: %s", out.String())
	}
	e = newEnv(strings.NewReader(""), &out, &out, func(string) string { return "" })
	run(context.Background(), []string{"help"}, e)
	if e.g.hub != "TestHubName" || e.g.key != "" {
		t.Fatalf("defaults: key %q hub %q", e.g.key, e.g.hub)
	}
}

func TestColourOnlyOnATerminal(t *testing.T) {
	for _, tt := range []struct {
		tty     bool
		noColor bool
		env     string
		want    bool
	}{{true, false, "", true}, {false, false, "", false}, {true, true, "", false}, {true, false, "1", false}} {
		e := &env{stdoutTTY: tt.tty, getenv: func(k string) string {
			if k == "NO_COLOR" {
				return tt.env
			}
			return ""
		}}
		e.g.noColor = tt.noColor
		if got := e.style().Color; got != tt.want {
			t.Errorf("tty %v --no-color %v NO_COLOR=%q: colour %v, want %v", tt.tty, tt.noColor, tt.env, got, tt.want)
		}
	}
}
