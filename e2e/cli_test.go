package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/replaytest"
)

// cliResult is what one run of the durable command gave.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cliRunner runs the durable command with fixed leading flags.
type cliRunner struct {
	t     *testing.T
	bin   string
	flags []string
	env   []string
}

// run runs durable with r's flags and args, its standard input not a
// terminal, and returns what it printed and its exit code.
func (r cliRunner) run(args ...string) cliResult {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, append(append([]string(nil), r.flags...), args...)...)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DURABLE_") && !strings.HasPrefix(kv, "NO_COLOR=") {
			env = append(env, kv)
		}
	}
	// A race-enabled binary sleeps a second before exiting unless told not to.
	cmd.Env = append(append(env, "GORACE=atexit_sleep_ms=0"), r.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("durable %s: %v", strings.Join(args, " "), err)
	}
	return cliResult{stdout: out.String(), stderr: errb.String(), code: code}
}

// ok runs durable and fails the test unless it exits 0 with nothing on
// stderr.
func (r cliRunner) ok(args ...string) string {
	r.t.Helper()
	res := r.run(args...)
	if res.code != 0 {
		r.t.Fatalf("durable %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}
	return res.stdout
}

// fails runs durable and checks that it exits with code, printing exactly
// one line on stderr that contains want.
func (r cliRunner) fails(code int, want string, args ...string) cliResult {
	r.t.Helper()
	res := r.run(args...)
	if res.code != code || !strings.Contains(res.stderr, want) || strings.Count(res.stderr, "\n") != 1 {
		r.t.Fatalf("durable %s: want exit %d and one line with %q; got exit %d\nstdout: %s\nstderr: %q", strings.Join(args, " "), code, want, res.code, res.stdout, res.stderr)
	}
	return res
}

// statusOf reads an instance's status with show --json.
func (r cliRunner) statusOf(id string) statusPayload {
	r.t.Helper()
	return decode[statusPayload](r.t, []byte(r.ok("show", "--json", id)))
}

// waitFor polls show --json until the instance has status want.
func (r cliRunner) waitFor(id, want string) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := r.statusOf(id)
		if st.RuntimeStatus == want {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s never became %s: %+v", id, want, st)
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a condition with a deadline
	}
}

// helloRegistry is the test app's Orchestrator and Hello, for replaytest.
func helloRegistry(t *testing.T) *durable.Registry {
	hello := durable.NewActivity("Hello", func(ctx context.Context, city string) (string, error) { return "Hello " + city + "!", nil })
	orch := durable.NewOrchestrator("Orchestrator", func(ctx *durable.Context, _ any) ([]string, error) {
		var out []string
		for _, city := range []string{"Tokyo", "Seattle", "London"} {
			g, err := hello.Call(ctx, city).Await()
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	})
	reg := durable.NewRegistry()
	if err := reg.Add(orch, hello); err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestCLI runs every command of cmd/durable against the test app on
// Azurite, once through the management API and once in storage mode
// (the app still runs the instances; the command reaches the task hub's
// storage directly).
func TestCLI(t *testing.T) {
	hub := azuritetest.HubName(t)
	dir := t.TempDir()
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, hub, "CRASHTEST_DIR="+dir)...)
	waitReady(t, p)
	bin := binary(t, "./cmd/durable")
	modes := []struct {
		name  string
		flags []string
	}{
		{"api", []string{"--url", p.base}},
		{"storage", []string{"--storage", azuritetest.ConnectionString(t), "--hub", hub}},
	}
	for _, m := range modes {
		// In turn: both rewind tests use the app's one "heal" file.
		t.Run(m.name, func(t *testing.T) {
			cli := cliRunner{t: t, bin: bin, flags: m.flags}
			pre := "cli-" + m.name + "-"
			testCLIInstances(t, cli, pre, dir)
			testCLIRunningStep(t, cli, pre, dir)
			testCLIEntities(t, cli, pre, m.name == "storage")
		})
	}
	t.Run("bad input", func(t *testing.T) {
		t.Parallel()
		cli := cliRunner{t: t, bin: bin, flags: []string{"--url", p.base}}
		cli.fails(1, "404 NotFound: ", "show", "no-such-instance")
		cli.fails(1, "404 NotFound: ", "terminate", "no-such-instance")
		cli.fails(2, `unknown status "Bogus"`, "list", "--status", "Running,Bogus")
		cli.fails(2, `is not a time`, "list", "--created-from", "yesterday")
		cli.fails(2, "missing arguments", "start")
		cli.fails(2, "is not JSON", "start", "Echo", "--input", "{bad")
		cli.fails(2, `unknown command "frobnicate"`, "frobnicate")
		cli.fails(2, "flag provided but not defined: --frob", "list", "--frob")
		cli.fails(1, "404 OrchestratorNotFound: ", "start", "NoSuchOrchestrator")
		// The same in storage mode, and a storage account that refuses the key.
		store := cliRunner{t: t, bin: bin, flags: modes[1].flags}
		store.fails(1, "404 NotFound: ", "show", "no-such-instance")
		store.fails(1, "404 NotFound: ", "raise", "no-such-instance", "Go")
		store.fails(2, `unknown status "Bogus"`, "list", "--status", "Bogus")
		acct := storageAccount(t)
		badKey := strings.Replace(azuritetest.ConnectionString(t), acct.Key, "AAAA"+acct.Key[4:], 1)
		if badKey == azuritetest.ConnectionString(t) {
			t.Fatal("the connection string does not carry the account key")
		}
		wrong := cliRunner{t: t, bin: bin, flags: []string{"--storage", badKey, "--hub", hub}}
		wrong.fails(1, "storage answered 403 AuthorizationFailure", "list")
		noHub := cliRunner{t: t, bin: bin, flags: []string{"--storage", azuritetest.ConnectionString(t), "--hub", "NoSuchHub"}}
		noHub.fails(1, `task hub "NoSuchHub": no such task hub in this storage account (no table NoSuchHubInstances; check --hub)`, "list")
		unreachable := cliRunner{t: t, bin: bin, flags: []string{"--url", "http://127.0.0.1:1"}}
		unreachable.fails(1, "cannot reach http://127.0.0.1:1: connection refused", "list")
		// Help goes to stdout with exit 0.
		if out := cli.ok("help"); !strings.Contains(out, "watch") || !strings.Contains(out, "--storage") {
			t.Fatalf("help: %s", out)
		}
		if out := cli.ok("purge", "--help"); !strings.Contains(out, "--yes") {
			t.Fatalf("purge --help: %s", out)
		}
	})
}

func testCLIInstances(t *testing.T, cli cliRunner, pre, dir string) {
	hello := pre + "hello"
	if got := strings.TrimSpace(cli.ok("start", "Orchestrator", "--id", hello)); got != hello {
		t.Fatalf("start printed %q, want the ID %q", got, hello)
	}
	// watch follows it to the end: exit 0, the status changes and the output.
	out := cli.ok("watch", "--interval", "100ms", hello)
	if !strings.Contains(out, "Completed") || !strings.Contains(out, `output: ["Hello Tokyo!","Hello Seattle!","Hello London!"]`) {
		t.Fatalf("watch: %s", out)
	}
	// show: the status and one timeline line per Hello call, in order.
	out = cli.ok("show", hello)
	if !regexp.MustCompile(`(?m)^Status +Completed$`).MatchString(out) || !strings.Contains(out, "Name      Orchestrator") {
		t.Fatalf("show: %s", out)
	}
	steps := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}  \d\d:\d\d:\d\d\.\d{3}  \S+ +activity +Hello +"(Hello \w+!)"$`).FindAllStringSubmatch(out, -1)
	if len(steps) != 3 || steps[0][1] != "Hello Tokyo!" || steps[1][1] != "Hello Seattle!" || steps[2][1] != "Hello London!" {
		t.Fatalf("show: want three Hello steps, got %q in\n%s", steps, out)
	}
	if !regexp.MustCompile(`(?m)^\S+ +started +Orchestrator`).MatchString(out) || !regexp.MustCompile(`(?m) completed +Completed `).MatchString(out) {
		t.Fatalf("show: no start or completion line:\n%s", out)
	}
	// show --json is the status payload.
	if st := cli.statusOf(hello); st.InstanceID != hello || st.RuntimeStatus != "Completed" || st.Name != "Orchestrator" {
		t.Fatalf("show --json: %+v", st)
	}
	// history: to a file and to stdout, the same export, which replays.
	file := filepath.Join(t.TempDir(), "hello.json")
	cli.ok("history", hello, "--out", file)
	saved, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := cli.ok("history", hello); got != string(saved) {
		t.Fatalf("history to stdout differs from --out:\n%s\nvs\n%s", got, saved)
	}
	if err := replaytest.Check(helloRegistry(t), saved); err != nil {
		t.Fatalf("the export does not replay: %v\n%s", err, saved)
	}
	// list --json has it, Completed; the table too; --name filters.
	var listed []statusPayload
	if err := json.Unmarshal([]byte(cli.ok("list", "--json", "--prefix", hello)), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].InstanceID != hello || listed[0].RuntimeStatus != "Completed" {
		t.Fatalf("list --json: %+v", listed)
	}
	if out := cli.ok("list", "--status", "Completed", "--name", "orchestrator", "--prefix", pre); !regexp.MustCompile(`(?m)^` + hello + ` +Orchestrator +Completed +\d{4}-`).MatchString(out) {
		t.Fatalf("list table: %s", out)
	}
	if out := cli.ok("list", "--name", "Waiter", "--prefix", hello); strings.TrimSpace(out) != "no instances match" {
		t.Fatalf("list --name Waiter: %s", out)
	}

	// raise: the Waiter returns the event's data.
	wait := pre + "wait"
	cli.ok("start", "Waiter", "--id", wait)
	cli.waitFor(wait, "Running")
	if out := cli.ok("raise", wait, "Go", "--data", `{"v":"hi"}`); !strings.Contains(out, "raised Go to "+wait) {
		t.Fatalf("raise: %s", out)
	}
	if out := cli.ok("watch", "--interval", "100ms", wait); !strings.Contains(out, `output: {"v":"hi"}`) {
		t.Fatalf("watch after raise: %s", out)
	}
	if out := cli.ok("show", wait); !regexp.MustCompile(`(?m) event +Go +\{"v":"hi"\}$`).MatchString(out) {
		t.Fatalf("show: no event line:\n%s", out)
	}
	cli.fails(1, "410 InstanceFinished: ", "raise", wait, "Go")

	// suspend, resume, terminate; watch of a terminated instance exits 1.
	susp := pre + "susp"
	cli.ok("start", "Waiter", "--id", susp)
	cli.waitFor(susp, "Running")
	cli.ok("suspend", susp, "--reason", "pause")
	cli.waitFor(susp, "Suspended")
	cli.ok("resume", susp)
	cli.waitFor(susp, "Running")
	cli.ok("terminate", susp, "--reason", "enough")
	res := cli.fails(1, "instance "+susp+" is Terminated", "watch", "--interval", "100ms", susp)
	if !strings.Contains(res.stdout, "Terminated") {
		t.Fatalf("watch of a terminated instance: %s", res.stdout)
	}
	out = cli.ok("show", susp)
	for _, want := range []string{"suspended +pause", "resumed", `terminated +"enough"`} {
		if !regexp.MustCompile(`(?m) ` + want + `$`).MatchString(out) {
			t.Fatalf("show: no %q line:\n%s", want, out)
		}
	}

	// rewind a failed instance once its activity heals.
	flaky := pre + "flaky"
	os.Remove(filepath.Join(dir, "heal"))
	cli.ok("start", "Flaky", "--id", flaky)
	res = cli.fails(1, "instance "+flaky+" is Failed", "watch", "--interval", "100ms", flaky)
	if out := cli.ok("show", flaky); !strings.Contains(out, "failed: ") || !strings.Contains(out, "not healed yet") {
		t.Fatalf("show of a failed instance: %s", out)
	}
	if err := os.WriteFile(filepath.Join(dir, "heal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cli.ok("rewind", flaky, "--reason", "healed")
	// The rewind is a message: the status stays Failed until the app takes it.
	cli.waitFor(flaky, "Completed")
	if out := cli.ok("watch", "--interval", "100ms", flaky); !strings.Contains(out, "healed") {
		t.Fatalf("watch after rewind: %s", out)
	}

	// restart, under a new ID and under the same one.
	newID := strings.TrimSpace(cli.ok("restart", hello, "--new-id"))
	if newID == hello || newID == "" {
		t.Fatalf("restart --new-id printed %q", newID)
	}
	cli.ok("watch", "--interval", "100ms", newID)
	if got := strings.TrimSpace(cli.ok("restart", hello)); got != hello {
		t.Fatalf("restart printed %q, want %q", got, hello)
	}
	cli.ok("watch", "--interval", "100ms", hello)

	// purge one, then by filter: refused without --yes (no terminal), then done.
	cli.ok("purge", newID)
	cli.fails(1, "404 NotFound: ", "show", newID)
	cli.fails(2, "would purge 4 finished instance(s) (3 Completed, 1 Terminated): add --yes", "purge", "--prefix", pre, "--status", "Completed,Terminated", "--created-to", time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	if out := cli.ok("purge", "--prefix", pre, "--status", "Completed,Terminated", "--yes"); strings.TrimSpace(out) != "purged 4 instance(s)" {
		t.Fatalf("purge by filter: %q", out)
	}
	var left []statusPayload
	if err := json.Unmarshal([]byte(cli.ok("list", "--json", "--prefix", pre)), &left); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("after purge, left: %+v", left)
	}
}

// testCLIRunningStep: show lists a call still under way as running (the
// CrashTest's Step "two" blocks until the test writes the "release" file),
// then, once released, as finished.
func testCLIRunningStep(t *testing.T, cli cliRunner, pre, dir string) {
	for _, f := range []string{"release", "blocked"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	crash := pre + "crash"
	cli.ok("start", "CrashTest", "--id", crash)
	running := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}  \.\.\. +running +activity +Step$`)
	finished := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}  \d\d:\d\d:\d\d\.\d{3}  \S+ +activity +Step +"done (\w+)"$`)
	status := regexp.MustCompile(`(?m)^Status +Running$`)
	deadline := time.Now().Add(30 * time.Second)
	var out string
	for {
		_, err := os.Stat(filepath.Join(dir, "blocked"))
		out = cli.ok("show", crash)
		// The status row may trail the history briefly: wait for both.
		if err == nil && running.MatchString(out) && status.MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("show never listed Step two as running in a Running instance (blocked file: %v):\n%s", err, out)
		}
		<-time.After(50 * time.Millisecond)
	}
	if got := finished.FindAllStringSubmatch(out, -1); len(got) != 1 || got[0][1] != "one" || len(running.FindAllString(out, -1)) != 1 {
		t.Fatalf("while Step two runs, show wants Step one finished and one running step:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cli.ok("watch", "--interval", "100ms", crash)
	out = cli.ok("show", crash)
	got := finished.FindAllStringSubmatch(out, -1)
	if len(got) != 3 || got[0][1] != "one" || got[1][1] != "two" || got[2][1] != "three" || strings.Contains(out, "running") {
		t.Fatalf("after the release, show wants Steps one, two, three finished and none running:\n%s", out)
	}
	cli.ok("purge", crash)
}

func testCLIEntities(t *testing.T, cli cliRunner, pre string, storage bool) {
	key := pre + "counter"
	if out := cli.ok("entity", "signal", "Counter", key, "add", "--input", "5"); !strings.Contains(out, "signalled add to @counter@"+key) {
		t.Fatalf("entity signal: %s", out)
	}
	cli.ok("entity", "signal", "Counter", key, "add", "--input", "2")
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := cli.run("entity", "get", "Counter", key)
		if res.code == 0 && strings.TrimSpace(res.stdout) == "7" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entity get never gave 7: %+v", res)
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a condition with a deadline
	}
	var ents []struct {
		EntityID struct{ Name, Key string } `json:"entityId"`
		State    json.RawMessage            `json:"state"`
	}
	if err := json.Unmarshal([]byte(cli.ok("entity", "list", "Counter", "--state", "--json", "--all")), &ents); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ents {
		if e.EntityID.Key == key {
			found = e.EntityID.Name == "counter" && string(e.State) == "7"
		}
	}
	if !found {
		t.Fatalf("entity list --json: no counter %s with state 7 in %+v", key, ents)
	}
	if out := cli.ok("entity", "list", "Counter", "--state", "--all"); !regexp.MustCompile(`(?m)^counter +` + key + ` +\S+ +7$`).MatchString(out) {
		t.Fatalf("entity list: %s", out)
	}
	cli.fails(1, "404 ", "entity", "get", "Counter", pre+"never-signalled")
	if !storage {
		cli.fails(2, "needs --storage: the management API has no route for cleaning entity storage", "entity", "clean", "--remove-empty")
		return
	}
	if out := cli.ok("entity", "clean", "--remove-empty", "--release-orphaned-locks"); !regexp.MustCompile(`^removed \d+ empty entities, released \d+ orphaned locks\n$`).MatchString(out) {
		t.Fatalf("entity clean: %q", out)
	}
	// The counter has state: cleaning does not remove it.
	if out := strings.TrimSpace(cli.ok("entity", "get", "Counter", key)); out != "7" {
		t.Fatalf("after clean: %s", out)
	}
}

// TestCLIFunctionKey runs the command against an app that requires a
// function key: without it or with a wrong one the API's 401 message,
// with --key or $DURABLE_FUNCTION_KEY the answer.
func TestCLIFunctionKey(t *testing.T) {
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, azuritetest.HubName(t), "DURABLE_FUNCTION_KEY=s3cret", "CRASHTEST_DIR="+t.TempDir())...)
	bin := binary(t, "./cmd/durable")
	cli := cliRunner{t: t, bin: bin, flags: []string{"--url", p.base}}
	cli.fails(1, "401 Unauthorized: a valid function key is required", "list")
	cli.fails(1, "401 Unauthorized: a valid function key is required", "--key", "wrong", "list")
	id := strings.TrimSpace(cli.ok("--key", "s3cret", "start", "Echo", "--input", `"x"`))
	withEnv := cliRunner{t: t, bin: bin, flags: cli.flags, env: []string{"DURABLE_FUNCTION_KEY=s3cret"}}
	if out := withEnv.ok("watch", "--interval", "100ms", id); !strings.Contains(out, `output: "x"`) {
		t.Fatalf("watch with the key from the environment: %s", out)
	}
}
