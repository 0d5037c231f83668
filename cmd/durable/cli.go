package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"syscall"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/go-durable/durablefunctions/cmd/durable/internal/render"
	"github.com/go-durable/durablefunctions/handler/durableapi/apiclient"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the operation failed (API error, unreachable app, instance not Completed for watch)
	exitUsage = 2 // the command line is wrong
)

// env is what a command runs with: its streams, the environment and the
// global options.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// stdinTTY and stdoutTTY tell whether the streams are terminals (for
	// the purge prompt and colour).
	stdinTTY, stdoutTTY bool

	g globals
}

// globals are the flags every command accepts.
type globals struct {
	url, key      string
	storage, hub  string
	partitions    int
	json, noColor bool
	// wake: in storage mode, send wake messages with what is sent.
	wake bool
}

// newEnv returns the env of a process with these streams.
func newEnv(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) *env {
	return &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv,
		stdinTTY: isTerminal(stdin), stdoutTTY: isTerminal(stdout)}
}

// style is the colouring of output: only on a terminal, never with
// --no-color or NO_COLOR set.
func (e *env) style() render.Style {
	return render.Style{Color: e.stdoutTTY && !e.g.noColor && e.getenv("NO_COLOR") == ""}
}

// usageError is a wrong command line (exit code 2).
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// command is one subcommand.
type command struct {
	name, args, summary string
	// run parses args (after the command name) with e.flagSet and does the job.
	run func(ctx context.Context, e *env, args []string) error
}

// commands lists the subcommands; "entity" has its own subcommands.
var commands []*command

func init() {
	commands = []*command{
		{"list", "[flags]", "list instances (a table, or the API's JSON array with --json)", runList},
		{"show", "ID", "show an instance's status and a timeline of its history", runShow},
		{"history", "ID [--out FILE]", "export an instance's history (the file package replaytest reads)", runHistory},
		{"start", "NAME [--input JSON] [--id ID] [--version V]", "start an orchestration; prints the instance ID", runStart},
		{"raise", "ID EVENT [--data JSON]", "raise an event to an instance", runRaise},
		{"terminate", "ID [--reason TEXT]", "terminate an instance", opCommand("terminate")},
		{"suspend", "ID [--reason TEXT]", "suspend an instance", opCommand("suspend")},
		{"resume", "ID [--reason TEXT]", "resume a suspended instance", opCommand("resume")},
		{"rewind", "ID [--reason TEXT]", "rewind a failed instance to before its failures", opCommand("rewind")},
		{"restart", "ID [--new-id]", "start an instance's orchestration again with the same input", runRestart},
		{"purge", "ID | --status S --prefix P --created-from T --created-to T [--yes]", "delete finished instances and their history", runPurge},
		{"watch", "ID [--interval D]", "follow an instance until it finishes (exit 0 only if Completed)", runWatch},
		{"entity", "list|get|signal|clean ...", "entity commands (durable entity --help)", runEntity},
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// run runs the command line args (without the program name) and returns
// the exit code.
func run(ctx context.Context, args []string, e *env) int {
	e.g = globals{url: "http://127.0.0.1:7071", key: e.getenv("DURABLE_FUNCTION_KEY"), hub: e.getenv("DURABLE_TASK_HUB"), wake: true}
	if e.g.hub == "" {
		e.g.hub = "TestHubName"
	}
	fs := e.flagSet("durable")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			e.mainUsage(e.stdout)
			return exitOK
		}
		return e.fail("", &usageError{err.Error()})
	}
	rest := fs.Args()
	if len(rest) == 0 {
		e.mainUsage(e.stderr)
		return exitUsage
	}
	name := rest[0]
	if name == "help" {
		if len(rest) > 1 {
			if c := lookup(rest[1]); c != nil {
				return e.exit(c.name, c.run(ctx, e, []string{"--help"}))
			}
			return e.fail("help", usagef("unknown command %q (see 'durable help')", rest[1]))
		}
		e.mainUsage(e.stdout)
		return exitOK
	}
	c := lookup(name)
	if c == nil {
		return e.fail("", usagef("unknown command %q (see 'durable help')", name))
	}
	return e.exit(c.name, c.run(ctx, e, rest[1:]))
}

// errHelpShown: a command printed its help; exit 0.
var errHelpShown = errors.New("help shown")

func (e *env) exit(cmd string, err error) int {
	if err == nil || errors.Is(err, errHelpShown) {
		return exitOK
	}
	return e.fail(cmd, err)
}

// fail prints err as one line on stderr and returns its exit code.
func (e *env) fail(cmd string, err error) int {
	prefix := "durable: "
	if cmd != "" {
		prefix = "durable " + cmd + ": "
	}
	fmt.Fprintln(e.stderr, prefix+oneLine(e.describe(err)))
	var u *usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	return exitError
}

// describe renders err for a person: the API's status and message, or
// which address could not be reached.
func (e *env) describe(err error) string {
	var ae *apiclient.APIError
	if errors.As(err, &ae) {
		s := fmt.Sprintf("%d", ae.StatusCode)
		if ae.Code != "" {
			s += " " + ae.Code
		}
		return s + ": " + ae.Message
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		// The SDK's error spans many lines with the whole response; its
		// status and error code say it.
		full, short := err.Error(), fmt.Sprintf("storage answered %d %s", re.StatusCode, re.ErrorCode)
		if i := strings.Index(full, re.Error()); i >= 0 {
			return full[:i] + short
		}
		return short
	}
	var ue *url.Error
	if errors.As(err, &ue) && e.g.storage == "" {
		why := ue.Err.Error()
		if errors.Is(err, syscall.ECONNREFUSED) {
			why = "connection refused"
		}
		return fmt.Sprintf("cannot reach %s: %s", e.g.url, why)
	}
	return err.Error()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// flagSet returns a flag set for command name with the global flags.
func (e *env) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.g.url, "url", e.g.url, "base URL of the app; the management API is {url}/api/durabletask")
	fs.StringVar(&e.g.key, "key", e.g.key, "function key for the API (default $DURABLE_FUNCTION_KEY)")
	fs.StringVar(&e.g.storage, "storage", e.g.storage, "storage connection string: work on the task hub's storage, without the app")
	fs.StringVar(&e.g.hub, "hub", e.g.hub, "task hub name in storage mode (default $DURABLE_TASK_HUB, else TestHubName)")
	fs.IntVar(&e.g.partitions, "partitions", e.g.partitions, "partition count of the task hub in storage mode (default $DURABLE_PARTITION_COUNT, else 4)")
	fs.BoolVar(&e.g.wake, "wake", e.g.wake, "storage mode: send a wake message with every message, so that an app scaled to zero starts (see the README's Scale from zero); -wake=false leaves them out")
	fs.BoolVar(&e.g.json, "json", e.g.json, "print JSON for scripts")
	fs.BoolVar(&e.g.noColor, "no-color", e.g.noColor, "no colours (they are used only on a terminal anyway)")
	return fs
}

// isGlobal reports whether a flag is one of the global flags.
func isGlobal(name string) bool {
	switch name {
	case "url", "key", "storage", "hub", "partitions", "json", "no-color", "wake":
		return true
	}
	return false
}

// parse parses args with fs, flags and positional arguments mixed in any
// order ("--" ends the flags), and checks the number of positional
// arguments: min..max (max < 0: any). --help prints the command's help.
func (e *env) parse(fs *flag.FlagSet, c *command, args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				e.commandUsage(e.stdout, fs, c)
				return nil, errHelpShown
			}
			msg := strings.NewReplacer("flag -", "flag --", ": -", ": --").Replace(err.Error())
			return nil, &usageError{msg + " (see 'durable " + c.name + " --help')"}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < min:
		return nil, usagef("missing arguments: want %s %s (see 'durable %s --help')", c.name, c.args, c.name)
	case max >= 0 && len(pos) > max:
		return nil, usagef("too many arguments: %q (want %s %s)", strings.Join(pos[max:], " "), c.name, c.args)
	}
	return pos, nil
}

func (e *env) mainUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString(`durable inspects and manages the instances and entities of a Durable Functions
for Go task hub, through a running app's management API or straight through
the task hub's storage (--storage).

Usage:
  durable [global flags] COMMAND [arguments and flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString(`  help       help on a command: durable help COMMAND

Global flags (before or after the command):
`)
	writeFlags(&b, e.flagSet("durable"), true)
	b.WriteString(`
Exit codes: 0 done, 1 the operation failed, 2 the command line is wrong.
`)
	io.WriteString(w, b.String())
}

func (e *env) commandUsage(w io.Writer, fs *flag.FlagSet, c *command) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: durable %s %s\n\n%s.\n", c.name, c.args, upperFirst(c.summary))
	if h := commandHelp[c.name]; h != "" {
		b.WriteString("\n" + h)
	}
	var own strings.Builder
	writeFlags(&own, fs, false)
	if own.Len() > 0 {
		b.WriteString("\nFlags:\n" + own.String())
	}
	b.WriteString("\nGlobal flags: --url, --key, --storage, --hub, --partitions, --json, --no-color (durable help).\n")
	io.WriteString(w, b.String())
}

// writeFlags lists the flags of fs, the global ones or the others.
func writeFlags(b *strings.Builder, fs *flag.FlagSet, global bool) {
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		if isGlobal(f.Name) != global {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		l := "  --" + f.Name
		if name != "" {
			l += " " + name
		}
		l = fmt.Sprintf("%-26s %s", l, usage)
		if f.Name != "key" && f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && !strings.Contains(usage, "default") {
			l += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		lines = append(lines, l)
	})
	sort.Strings(lines)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
