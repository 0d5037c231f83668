package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/cmd/durable/internal/render"
	"github.com/go-durable/durablefunctions/handler/durableapi/apiclient"
)

// commandHelp is the longer help of some commands.
var commandHelp = map[string]string{
	"list": "Filters combine: --status Running,Failed --name Orchestrator --prefix order-\n" +
		"--created-from 2026-01-02T00:00:00Z. Shows --top instances (default 100); --all shows all.\n",
	"show": "The timeline has one line per activity, sub-orchestration, timer and event:\n" +
		"start, end, duration, and the result or failure; a call still under way shows as\n" +
		"running. --json prints the status payload.\n",
	"history": "Writes the status with its history, inputs and results (showHistory=true,\n" +
		"showHistoryOutput=true): save it as a test file for replaytest.CheckFiles.\n",
	"purge": "With an ID, purges that instance. With filters, counts the finished instances\n" +
		"that match and asks before purging them (--yes skips the question; without a\n" +
		"terminal, --yes is required).\n",
	"watch": "Prints each change of status or custom status, then the output. The exit code\n" +
		"is 0 if the instance completed, 1 if it failed or was terminated.\n",
}

// statusNames are the runtime statuses --status accepts.
var statusNames = []apiclient.RuntimeStatus{apiclient.StatusPending, apiclient.StatusRunning, apiclient.StatusCompleted,
	apiclient.StatusContinuedAsNew, apiclient.StatusFailed, apiclient.StatusCanceled, apiclient.StatusTerminated, apiclient.StatusSuspended}

// statusList is the repeatable, comma-separated --status flag.
type statusList []apiclient.RuntimeStatus

func (s *statusList) String() string {
	parts := make([]string, len(*s))
	for i, v := range *s {
		parts[i] = string(v)
	}
	return strings.Join(parts, ",")
}

// Set adds the statuses of one --status value, matched case-insensitively.
func (s *statusList) Set(v string) error {
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		found := false
		for _, st := range statusNames {
			if strings.EqualFold(name, string(st)) {
				*s, found = append(*s, st), true
				break
			}
		}
		if !found {
			return fmt.Errorf("unknown status %q (want %s)", name, (*statusList)(&statusNames).String())
		}
	}
	return nil
}

// timeFlag is an RFC 3339 time flag.
type timeFlag struct{ t *time.Time }

func (f timeFlag) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

// Set parses an RFC 3339 time, or a date (midnight UTC).
func (f timeFlag) Set(v string) error {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			*f.t = t
			return nil
		}
	}
	return fmt.Errorf("%q is not a time (use RFC 3339, e.g. 2026-01-02T15:04:05Z)", v)
}

// jsonFlag is a flag holding JSON text, checked when set.
type jsonFlag struct{ raw *json.RawMessage }

func (f jsonFlag) String() string {
	if f.raw == nil {
		return ""
	}
	return string(*f.raw)
}

// Set checks that v is JSON.
func (f jsonFlag) Set(v string) error {
	if !json.Valid([]byte(v)) {
		return fmt.Errorf("%q is not JSON (a JSON string needs quotes: '\"text\"')", v)
	}
	*f.raw = json.RawMessage(v)
	return nil
}

// filterFlags are the instance filters of list and purge.
type filterFlags struct {
	statuses               statusList
	prefix                 string
	createdFrom, createdTo time.Time
}

func (f *filterFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.statuses, "status", "only instances in `STATUS` (repeatable, or a comma list: Running,Failed)")
	fs.StringVar(&f.prefix, "prefix", "", "only instances whose ID starts with this")
	fs.Var(timeFlag{&f.createdFrom}, "created-from", "only instances created at or after `TIME` (RFC 3339)")
	fs.Var(timeFlag{&f.createdTo}, "created-to", "only instances created at or before `TIME` (RFC 3339)")
}

func (f *filterFlags) filter() (apiclient.Filter, error) {
	if !f.createdFrom.IsZero() && !f.createdTo.IsZero() && f.createdTo.Before(f.createdFrom) {
		return apiclient.Filter{}, usagef("--created-to %s is before --created-from %s", f.createdTo.Format(time.RFC3339), f.createdFrom.Format(time.RFC3339))
	}
	return apiclient.Filter{RuntimeStatus: f.statuses, InstanceIDPrefix: f.prefix, CreatedFrom: f.createdFrom, CreatedTo: f.createdTo}, nil
}

func (f *filterFlags) empty() bool {
	return len(f.statuses) == 0 && f.prefix == "" && f.createdFrom.IsZero() && f.createdTo.IsZero()
}

// writeJSON prints v (or JSON text) indented.
func (e *env) writeJSON(v any) error {
	var b []byte
	switch t := v.(type) {
	case []byte:
		var out bytes.Buffer
		if err := json.Indent(&out, t, "", "  "); err != nil {
			return fmt.Errorf("the API's answer is not JSON: %w", err)
		}
		b = out.Bytes()
	default:
		var err error
		if b, err = json.MarshalIndent(v, "", "  "); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

func runList(ctx context.Context, e *env, args []string) error {
	c := lookup("list")
	fs := e.flagSet(c.name)
	var ff filterFlags
	ff.register(fs)
	name := fs.String("name", "", "only instances of this orchestrator (case-insensitive)")
	top := fs.Int("top", 100, "show at most this many instances")
	all := fs.Bool("all", false, "show every matching instance, page after page")
	if _, err := e.parse(fs, c, args, 0, 0); err != nil {
		return err
	}
	if *top <= 0 {
		return usagef("--top %d: want a positive number", *top)
	}
	f, err := ff.filter()
	if err != nil {
		return err
	}
	f.PageSize = min(*top, 1000)
	cn, err := e.connect(ctx)
	if err != nil {
		return err
	}
	list := []*apiclient.Status{}
	more := false
	for st, err := range cn.api.List(ctx, f) {
		if err != nil {
			return err
		}
		if *name != "" && !strings.EqualFold(st.Name, *name) {
			continue
		}
		if !*all && len(list) == *top {
			more = true
			break
		}
		list = append(list, st)
	}
	if e.g.json {
		return e.writeJSON(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "no instances match")
		return nil
	}
	if err := render.Table(e.stdout, render.InstanceHeader, render.InstanceRows(e.style(), list)); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(e.stderr, "(showing the first %d; more match: use --all or a larger --top)\n", *top)
	}
	return nil
}

func runShow(ctx context.Context, e *env, args []string) error {
	c := lookup("show")
	fs := e.flagSet(c.name)
	pos, cn, err := e.parseConnect(ctx, fs, c, args, 1, 1)
	if err != nil {
		return err
	}
	if e.g.json {
		b, err := cn.api.StatusJSON(ctx, pos[0])
		if err != nil {
			return err
		}
		return e.writeJSON(b)
	}
	// ShowScheduled: the calls still running show on the timeline too.
	st, err := cn.api.Status(ctx, pos[0], apiclient.ShowHistoryOutput(), apiclient.ShowScheduled())
	if err != nil {
		return err
	}
	s := e.style()
	if err := render.Summary(e.stdout, s, st); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "\nTimeline (UTC)")
	return render.Timeline(e.stdout, s, st.History)
}

func runHistory(ctx context.Context, e *env, args []string) error {
	c := lookup("history")
	fs := e.flagSet(c.name)
	out := fs.String("out", "", "write the export to this file instead of standard output")
	pos, cn, err := e.parseConnect(ctx, fs, c, args, 1, 1)
	if err != nil {
		return err
	}
	b, err := cn.api.StatusJSON(ctx, pos[0], apiclient.ShowHistoryOutput())
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b, "", "  "); err != nil {
		return fmt.Errorf("the API's answer is not JSON: %w", err)
	}
	pretty.WriteByte('\n')
	if *out == "" {
		_, err := e.stdout.Write(pretty.Bytes())
		return err
	}
	if err := os.WriteFile(*out, pretty.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Fprintf(e.stderr, "wrote the history of %s to %s\n", pos[0], *out)
	return nil
}

func runStart(ctx context.Context, e *env, args []string) error {
	c := lookup("start")
	fs := e.flagSet(c.name)
	var input json.RawMessage
	fs.Var(jsonFlag{&input}, "input", "the orchestration's input, as `JSON` (default null)")
	id := fs.String("id", "", "the instance ID (default a new one)")
	version := fs.String("version", "", "the orchestration version (default the app's)")
	pos, cn, err := e.parseConnect(ctx, fs, c, args, 1, 1)
	if err != nil {
		return err
	}
	var opts []apiclient.StartOption
	if *id != "" {
		opts = append(opts, apiclient.WithInstanceID(*id))
	}
	if *version != "" {
		opts = append(opts, apiclient.WithVersion(*version))
	}
	links, err := cn.api.Start(ctx, pos[0], input, opts...)
	if err != nil {
		return err
	}
	if e.g.json {
		return e.writeJSON(links)
	}
	_, err = fmt.Fprintln(e.stdout, links.ID)
	return err
}

func runRaise(ctx context.Context, e *env, args []string) error {
	c := lookup("raise")
	fs := e.flagSet(c.name)
	var data json.RawMessage
	fs.Var(jsonFlag{&data}, "data", "the event's data, as `JSON` (default null)")
	pos, cn, err := e.parseConnect(ctx, fs, c, args, 2, 2)
	if err != nil {
		return err
	}
	if err := cn.api.RaiseEvent(ctx, pos[0], pos[1], data); err != nil {
		return err
	}
	return e.done(map[string]string{"instanceId": pos[0], "event": pos[1]}, "raised %s to %s", pos[1], pos[0])
}

// done reports a finished action: v as JSON with --json, else a line.
func (e *env) done(v any, format string, args ...any) error {
	if e.g.json {
		return e.writeJSON(v)
	}
	_, err := fmt.Fprintf(e.stdout, format+"\n", args...)
	return err
}

// opCommand runs terminate, suspend, resume or rewind.
func opCommand(op string) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		c := lookup(op)
		fs := e.flagSet(c.name)
		reason := fs.String("reason", "", "the reason, recorded in the history")
		pos, cn, err := e.parseConnect(ctx, fs, c, args, 1, 1)
		if err != nil {
			return err
		}
		do := map[string]func(context.Context, string, string) error{
			"terminate": cn.api.Terminate, "suspend": cn.api.Suspend, "resume": cn.api.Resume, "rewind": cn.api.Rewind,
		}[op]
		if err := do(ctx, pos[0], *reason); err != nil {
			return err
		}
		past := map[string]string{"terminate": "terminated", "suspend": "suspended", "resume": "resumed", "rewind": "rewound"}[op]
		return e.done(map[string]string{"instanceId": pos[0], "operation": op}, "%s %s", past, pos[0])
	}
}

func runRestart(ctx context.Context, e *env, args []string) error {
	c := lookup("restart")
	fs := e.flagSet(c.name)
	newID := fs.Bool("new-id", false, "restart under a new instance ID (default the same ID)")
	pos, cn, err := e.parseConnect(ctx, fs, c, args, 1, 1)
	if err != nil {
		return err
	}
	id, err := cn.api.Restart(ctx, pos[0], *newID)
	if err != nil {
		return err
	}
	return e.done(map[string]string{"instanceId": id}, "%s", id)
}

func runPurge(ctx context.Context, e *env, args []string) error {
	c := lookup("purge")
	fs := e.flagSet(c.name)
	var ff filterFlags
	ff.register(fs)
	yes := fs.Bool("yes", false, "purge by filter without asking")
	pos, err := e.parse(fs, c, args, 0, 1)
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		if !ff.empty() {
			return usagef("give an instance ID or filters, not both")
		}
		cn, err := e.connect(ctx)
		if err != nil {
			return err
		}
		if err := cn.api.Purge(ctx, pos[0]); err != nil {
			return err
		}
		return e.done(map[string]any{"instanceId": pos[0], "instancesDeleted": 1}, "purged %s", pos[0])
	}
	if ff.empty() {
		return usagef("give an instance ID, or filters (--status, --prefix, --created-from, --created-to) to purge by")
	}
	f, err := ff.filter()
	if err != nil {
		return err
	}
	if f.CreatedFrom.IsZero() {
		f.CreatedFrom = time.Unix(0, 0) // the API requires a lower bound
	}
	cn, err := e.connect(ctx)
	if err != nil {
		return err
	}
	count := map[apiclient.RuntimeStatus]int{}
	total := 0
	lf := f
	lf.HideInput, lf.PageSize = true, 1000
	for st, err := range cn.api.List(ctx, lf) {
		if err != nil {
			return err
		}
		if st.RuntimeStatus.IsTerminal() {
			count[st.RuntimeStatus]++
			total++
		}
	}
	if total == 0 {
		return e.done(map[string]int{"instancesDeleted": 0}, "no finished instances match; nothing purged")
	}
	var parts []string
	for _, s := range statusNames {
		if n := count[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	what := fmt.Sprintf("%d finished instance(s) (%s)", total, strings.Join(parts, ", "))
	if !*yes {
		if !e.stdinTTY {
			return usagef("would purge %s: add --yes to confirm (standard input is not a terminal to ask)", what)
		}
		fmt.Fprintf(e.stderr, "Purge %s and their history? [y/N] ", what)
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return errors.New("purge cancelled; nothing purged")
		}
	}
	n, err := cn.api.PurgeBy(ctx, f)
	if err != nil {
		return err
	}
	return e.done(map[string]int{"instancesDeleted": n}, "purged %d instance(s)", n)
}

// watchError ends a watch of an instance that did not complete.
type watchError struct {
	id     string
	status apiclient.RuntimeStatus
	output string
}

func (w *watchError) Error() string {
	s := fmt.Sprintf("instance %s is %s", w.id, w.status)
	if w.output != "" && w.output != "null" {
		s += ": " + w.output
	}
	return s
}

func runWatch(ctx context.Context, e *env, args []string) error {
	c := lookup("watch")
	fs := e.flagSet(c.name)
	interval := fs.Duration("interval", time.Second, "how often to poll the status")
	pos, err := e.parse(fs, c, args, 1, 1)
	if err != nil {
		return err
	}
	if *interval <= 0 {
		return usagef("--interval %s: want a positive duration", *interval)
	}
	cn, err := e.connect(ctx)
	if err != nil {
		return err
	}
	return e.watch(ctx, cn.api, pos[0], *interval)
}

// watch polls instance id every interval, printing changes, until it
// finishes.
func (e *env) watch(ctx context.Context, api *apiclient.Client, id string, interval time.Duration) error {
	s := e.style()
	var last string
	for {
		st, err := api.Status(ctx, id, apiclient.ShowInput(false))
		if err != nil {
			return err
		}
		seen := string(st.RuntimeStatus) + "\x00" + string(st.CustomStatus)
		if seen != last && !e.g.json {
			line := fmt.Sprintf("%s  %s", time.Now().UTC().Format("15:04:05"), s.Status(string(st.RuntimeStatus)))
			if v := render.Value(st.CustomStatus); v != "" && v != "null" {
				line += "  custom status " + v
			}
			fmt.Fprintln(e.stdout, line)
		}
		last = seen
		if st.RuntimeStatus.IsTerminal() {
			if e.g.json {
				if err := e.writeJSON(st); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(e.stdout, "output: %s\n", render.Value(st.Output))
			}
			if st.RuntimeStatus != apiclient.StatusCompleted {
				return &watchError{id: id, status: st.RuntimeStatus, output: render.Value(st.Output)}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped watching %s: %w", id, ctx.Err())
		case <-time.After(interval):
		}
	}
}
