package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/handler/durableapi/apiclient"
	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

// jsScenarioSteps are the steps e2e/jsinterop/interop.js runs in each mode,
// in order.
var jsScenarioSteps = []string{
	"startNew generated id",
	"getStatus completed Echo",
	"startNew explicit id",
	"getStatus running Waiter",
	"getStatus options",
	"startNew running id rejected",
	"startNew unknown orchestrator rejected",
	"getStatus unknown instance rejected",
	"raiseEvent",
	"raiseEvent finished instance",
	"raiseEvent unknown instance rejected",
	"terminate",
	"terminate finished instance",
	"getStatusAll",
	"getStatusBy createdTimeFrom and runtimeStatus",
	"getStatusBy empty results",
	"purgeInstanceHistory",
	"purgeInstanceHistoryBy",
	"suspend",
	"rewind unfailed instance rejected",
	"raiseEvent while suspended",
	"resume",
	"suspend and resume finished instance",
	"suspend unknown instance rejected",
	"rewind",
	"rewind completed instance rejected",
	"rewind unknown instance rejected",
	"startNew with version",
	"readEntityState before any signal",
	"signalEntity add",
	"signalEntity without input",
	"signalEntity unknown entity rejected",
}

// jsModes are the two ways the script configures the DurableClient.
var jsModes = []string{"rpc", "templates"}

// requireDurableFunctionsJS fails the test unless node runs and the npm
// package durable-functions is installed at the version package.json pins
// (CI installs it with npm ci). It returns the node executable.
func requireDurableFunctionsJS(t *testing.T, root string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the JavaScript DurableClient interop test (install Node.js 20, then run npm ci): %v", err)
	}
	var pkg struct {
		DevDependencies map[string]string `json:"devDependencies"`
	}
	b, err := os.ReadFile(filepath.Join(root, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatalf("package.json: %v", err)
	}
	want := pkg.DevDependencies["durable-functions"]
	if want == "" {
		t.Fatal("package.json does not pin durable-functions in devDependencies")
	}
	var installed struct{ Version string }
	b, err = os.ReadFile(filepath.Join(root, "node_modules", "durable-functions", "package.json"))
	if err == nil {
		err = json.Unmarshal(b, &installed)
	}
	if err != nil {
		t.Fatalf("the npm package durable-functions is not installed (run npm ci in %s): %v", root, err)
	}
	if installed.Version != want {
		t.Fatalf("node_modules has durable-functions %s, package.json pins %s: run npm ci", installed.Version, want)
	}
	return node
}

// TestJSDurableClientInterop drives the app's management API with the real
// JavaScript DurableClient (npm durable-functions v3) and then checks
// through the Go side that its actions took effect.
func TestJSDurableClientInterop(t *testing.T) {
	root := moduleRoot(t)
	node := requireDurableFunctionsJS(t, root)
	dir := t.TempDir() // the test app's CRASHTEST_DIR: the script heals Flaky there
	hub := azuritetest.HubName(t)
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, hub, "CRASHTEST_DIR="+dir)...)
	api := p.base + "/api/durabletask"

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("e2e", "jsinterop", "interop.js"), api+"/")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CRASHTEST_DIR="+dir)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("node e2e/jsinterop/interop.js %s/:\n%s", api, out)
	if ctx.Err() != nil {
		t.Fatalf("the interop script did not finish within 4 minutes")
	}
	if err != nil {
		t.Fatalf("the interop script failed (%v); see its output above", err)
	}

	// Every step of both modes reported ok, in order, then PASS.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var oks []string
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "ok "); ok {
			name, _, _ := strings.Cut(rest, ": ")
			oks = append(oks, name)
		}
	}
	want := []string{"setup load"}
	for _, mode := range jsModes {
		if mode == "templates" {
			want = append(want, "templates binding from check-status response")
		}
		for _, s := range jsScenarioSteps {
			want = append(want, mode+" "+s)
		}
	}
	if !slices.Equal(oks, want) {
		t.Fatalf("steps reported ok:\n  %s\nwant:\n  %s", strings.Join(oks, "\n  "), strings.Join(want, "\n  "))
	}
	if lines[len(lines)-1] != "PASS" {
		t.Fatalf("last line %q, want PASS", lines[len(lines)-1])
	}
	if !strings.Contains(string(out), "ok setup load: durable-functions@") {
		t.Fatal("the script did not report the durable-functions version")
	}
	genID := regexp.MustCompile(`(?m)^ok (\w+) startNew generated id: ([0-9a-f]{32})$`)
	generated := map[string]string{}
	for _, m := range genID.FindAllStringSubmatch(string(out), -1) {
		generated[m[1]] = m[2]
	}

	// The Go side sees what the JS client did.
	c, err := apiclient.New(api)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range jsModes {
		prefix := "js-" + mode + "-"

		// The counter the JS client signalled: added 5 and 37, then reset.
		if r := do(t, http.MethodGet, api+"/entities/Counter/"+prefix+"c1", ""); r.status != http.StatusOK || string(r.body) != "0" {
			t.Fatalf("entity Counter/%sc1: %d %s, want 200 0", prefix, r.status, r.body)
		}

		// Terminated with the reason as output (raw HTTP).
		r := do(t, http.MethodGet, api+"/instances/"+prefix+"term", "")
		if r.status != http.StatusOK {
			t.Fatalf("%sterm: %d %s", prefix, r.status, r.body)
		}
		if st := decode[statusPayload](t, r.body); st.Name != "Waiter" || st.RuntimeStatus != "Terminated" || string(st.Output) != `"stopped by js"` {
			t.Fatalf("%sterm: %s", prefix, r.body)
		}

		// Suspended, sent an event while suspended, resumed, completed.
		st, err := c.Status(ctx, prefix+"susp", apiclient.ShowHistoryOutput())
		if err != nil {
			t.Fatal(err)
		}
		var in map[string]string
		var output string
		if st.RuntimeStatus != apiclient.StatusCompleted || st.DecodeOutput(&output) != nil || output != "after resume" ||
			st.DecodeInput(&in) != nil || in["by"] != "js" {
			t.Fatalf("%ssusp: %+v", prefix, st)
		}
		suspended, resumed, raised := -1, -1, -1
		for i, h := range st.History {
			switch {
			case h.EventType == "ExecutionSuspended" && h.Reason == "paused by js":
				suspended = i
			case h.EventType == "ExecutionResumed" && h.Reason == "resumed by js":
				resumed = i
			case h.EventType == "EventRaised" && h.Name == "Go" && string(h.Input) == `"after resume"`:
				raised = i
			}
		}
		if suspended < 0 || resumed < suspended || raised < 0 {
			t.Fatalf("%ssusp history lacks the suspension, resumption or event (at %d, %d, %d): %s", prefix, suspended, resumed, raised, historyTypes(st))
		}

		// Failed, rewound, completed.
		st, err = c.Status(ctx, prefix+"flaky", apiclient.ShowHistory())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.DecodeOutput(&output); err != nil || st.RuntimeStatus != apiclient.StatusCompleted || output != "done before, healed" {
			t.Fatalf("%sflaky: %+v", prefix, st)
		}

		// Purged: the Echo by purgeInstanceHistory, the Waiter by
		// purgeInstanceHistoryBy.
		id, ok := generated[mode]
		if !ok {
			t.Fatalf("no generated instance ID reported for mode %s", mode)
		}
		for _, gone := range []string{id, prefix + "waiter"} {
			if _, err := c.Status(ctx, gone); !errors.Is(err, apiclient.ErrNotFound) {
				t.Fatalf("%s should be purged: %v", gone, err)
			}
		}
	}

	// Exactly the instances the scenario keeps are left under its prefix.
	var left []string
	for st, err := range c.List(ctx, apiclient.Filter{InstanceIDPrefix: "js-", PageSize: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, st.InstanceID+"="+string(st.RuntimeStatus))
	}
	slices.Sort(left)
	wantLeft := []string{
		"js-rpc-flaky=Completed", "js-rpc-susp=Completed", "js-rpc-term=Terminated", "js-rpc-ver=Completed",
		"js-templates-flaky=Completed", "js-templates-susp=Completed", "js-templates-term=Terminated", "js-templates-ver=Completed",
	}
	if !slices.Equal(left, wantLeft) {
		t.Fatalf("instances left %v, want %v", left, wantLeft)
	}
	// startNew({version}) stamped the version on the instance.
	for _, mode := range jsModes {
		if v := instanceColumn(t, hub, "js-"+mode+"-ver", "Version"); v != "3.1" {
			t.Errorf("js-%s-ver has Version %v in its Instances row, want 3.1", mode, v)
		}
	}
}

func historyTypes(st *apiclient.Status) string {
	var b strings.Builder
	for _, h := range st.History {
		b.Write(h.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}
