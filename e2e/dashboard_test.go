package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/handler/dashboard"
	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

// dashboardSteps are the steps e2e/dashboard/dashboard.js reports, in order.
var dashboardSteps = []string{"key asked once", "list", "status filter", "time range and paging", "timeline", "errors in place",
	"raise event", "terminate", "list after actions", "xss", "retries", "entities", "suspend and resume",
	"restart and purge", "bulk purge", "running step"}

// requireChromium fails the test unless Debian's chromium and the pinned
// playwright-core are installed (.ci/run installs both). It returns the
// node and chromium executables.
func requireChromium(t *testing.T, root string) (node, chromium string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the dashboard's browser test (install Node.js 20, then run npm ci): %v", err)
	}
	chromium, err = exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the dashboard's browser test needs Debian's chromium package (apt-get install chromium; .ci/run installs it): %v", err)
	}
	var pkg struct {
		DevDependencies map[string]string `json:"devDependencies"`
	}
	var installed struct{ Version string }
	b, err := os.ReadFile(filepath.Join(root, "package.json"))
	if err == nil {
		err = json.Unmarshal(b, &pkg)
	}
	if err != nil {
		t.Fatalf("package.json: %v", err)
	}
	b, err = os.ReadFile(filepath.Join(root, "node_modules", "playwright-core", "package.json"))
	if err == nil {
		err = json.Unmarshal(b, &installed)
	}
	if err != nil {
		t.Fatalf("the npm package playwright-core is not installed (run npm ci in %s): %v", root, err)
	}
	if want := pkg.DevDependencies["playwright-core"]; installed.Version != want {
		t.Fatalf("node_modules has playwright-core %s, package.json pins %q: run npm ci", installed.Version, want)
	}
	return node, chromium
}

// TestDashboardInBrowser opens the built-in dashboard in headless Chromium
// against the test app (with a function key) and uses it as a person
// would: it finds sample instances in the list with their status, sees the
// three Hello calls of an Orchestrator instance on its timeline, raises an
// event to a waiting instance and terminates another from the page, sees
// both statuses change, and checks that an output holding markup is shown
// as text, and sees a step still running drawn as such, then finished once
// released. The Go side then confirms through the API that the actions
// took effect. With DURABLE_UPDATE_SCREENSHOT=1 the instance page's
// screenshot replaces docs/dashboard.png.
func TestDashboardInBrowser(t *testing.T) {
	root := moduleRoot(t)
	node, chromium := requireChromium(t, root)
	const key = "dash-s3cret"
	crashDir := t.TempDir()
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, azuritetest.HubName(t), "DURABLE_FUNCTION_KEY="+key, "CRASHTEST_DIR="+crashDir)...)
	code := "?code=" + key
	api := p.base + "/api/durabletask"
	waitReadyKeyed(t, api+"/instances?top=1&code="+key)

	prefix := "dash-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-"
	ids := map[string]string{"orch": prefix + "orch", "wait": prefix + "wait", "term": prefix + "term", "xss": prefix + "xss"}
	const xss = `<script>window.__xss=1</script><img src=x onerror="window.__xss=2">`
	xssInput, _ := json.Marshal(xss)
	startVia(t, p.base, "Orchestrator/"+ids["orch"]+code, "")
	startVia(t, p.base, "Waiter/"+ids["wait"]+code, "")
	startVia(t, p.base, "Waiter/"+ids["term"]+code, "")
	startVia(t, p.base, "Echo/"+ids["xss"]+code, string(xssInput))
	waitRuntimeStatus(t, p.base, ids["orch"]+code, "Completed")
	if st := waitRuntimeStatus(t, p.base, ids["xss"]+code, "Completed"); string(st.Output) != string(xssInput) {
		t.Fatalf("Echo output %s, want %s", st.Output, xssInput)
	}
	// TypedErrors: a retried activity (two failures, then success), a
	// failure not retried and a failed sub-orchestration. Its prefix is
	// another one, out of the list the script filters.
	retry := "dashr-" + prefix + "retry"
	startVia(t, p.base, "TypedErrors/"+retry+code, `"`+retry+`"`)
	counterKey := prefix + "c1"
	if r := do(t, http.MethodPost, api+"/entities/Counter/"+counterKey+code+"&op=add", "5"); r.status != http.StatusAccepted {
		t.Fatalf("signal Counter/%s: %d %s", counterKey, r.status, r.body)
	}
	waitEntity(t, api+"/entities/Counter/"+counterKey+code, "5")
	// For the bulk purge: two finished instances and a waiting one.
	purge := "dashp-" + prefix
	// The script starts this CrashTest itself, late, and releases its Step two.
	crash := "dashs-" + prefix + "crash"
	startVia(t, p.base, "Echo/"+purge+"e1"+code, "1")
	startVia(t, p.base, "Echo/"+purge+"e2"+code, "2")
	startVia(t, p.base, "Waiter/"+purge+"wait"+code, "")
	waitRuntimeStatus(t, p.base, purge+"e1"+code, "Completed")
	waitRuntimeStatus(t, p.base, purge+"e2"+code, "Completed")
	waitRuntimeStatus(t, p.base, purge+"wait"+code, "Running")
	waitRuntimeStatus(t, p.base, retry+code, "Completed")
	waitRuntimeStatus(t, p.base, ids["wait"]+code, "Running")
	waitRuntimeStatus(t, p.base, ids["term"]+code, "Running")

	shot := filepath.Join(t.TempDir(), "dashboard.png")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("e2e", "dashboard", "dashboard.js"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "DASH_BASE="+p.base, "DASH_KEY="+key, "DASH_CHROMIUM="+chromium, "DASH_SHOT="+shot,
		"DASH_ORCH="+ids["orch"], "DASH_WAIT="+ids["wait"], "DASH_TERM="+ids["term"], "DASH_XSS="+ids["xss"],
		"DASH_RETRY="+retry, "DASH_COUNTER="+counterKey, "DASH_PURGE="+purge,
		"DASH_CRASH="+crash, "DASH_CRASHDIR="+crashDir)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("node e2e/dashboard/dashboard.js:\n%s", out)
	if ctx.Err() != nil {
		t.Fatal("the dashboard script did not finish within 2 minutes")
	}
	if err != nil {
		t.Fatalf("the dashboard script failed (%v); see its output above", err)
	}
	var oks []string
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "ok "); ok {
			name, _, _ := strings.Cut(rest, ": ")
			oks = append(oks, name)
		}
	}
	if !slices.Equal(oks, dashboardSteps) || lines[len(lines)-1] != "PASS" {
		t.Fatalf("steps reported ok %q (last line %q), want %q then PASS", oks, lines[len(lines)-1], dashboardSteps)
	}

	// What the page did, seen through the API.
	if st := waitRuntimeStatus(t, p.base, ids["wait"]+code, "Completed"); string(st.Output) != `{"from":"dashboard"}` {
		t.Fatalf("the waiter's output is %s, want the event data the page raised", st.Output)
	}
	if st := waitRuntimeStatus(t, p.base, ids["term"]+code, "Terminated"); string(st.Output) != `"stopped from the dashboard"` {
		t.Fatalf("the terminated instance's output is %s, want the page's reason", st.Output)
	}

	waitEntity(t, api+"/entities/Counter/"+counterKey+code, "7")
	if st := waitRuntimeStatus(t, p.base, crash+code, "Completed"); string(st.Output) != `["done one","done two","done three"]` {
		t.Fatalf("the CrashTest the page watched has output %s", st.Output)
	}
	for _, id := range []string{purge + "e1", purge + "e2"} {
		if r := do(t, http.MethodGet, api+"/instances/"+id+code, ""); r.status != http.StatusNotFound {
			t.Fatalf("%s survived the bulk purge: %d %s", id, r.status, r.body)
		}
	}
	st := waitRuntimeStatus(t, p.base, purge+"wait"+code+"&showHistory=true", "Running")
	var suspended, resumed bool
	for _, h := range st.HistoryEvents {
		suspended = suspended || strings.Contains(string(h), `"EventType":"ExecutionSuspended","Reason":"paused by the dashboard"`)
		resumed = resumed || strings.Contains(string(h), `"EventType":"ExecutionResumed"`)
	}
	if !suspended || !resumed {
		t.Fatalf("the waiter's history lacks the page's suspension or resumption: %s", st.HistoryEvents)
	}

	// The screenshot of the instance page is a real picture.
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if r := img.Bounds(); r.Dx() != 1280 || r.Dy() < 600 {
		t.Fatalf("the screenshot is %v, want 1280 wide and a full page", r)
	}
	if os.Getenv("DURABLE_UPDATE_SCREENSHOT") == "1" {
		if err := os.WriteFile(filepath.Join(root, "docs", "dashboard.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// waitReadyKeyed waits until the keyed management API stops answering 503.
func waitReadyKeyed(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app's task hub was not ready within 60s (last: %v)", err)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// waitEntity waits until the entity at url holds want (its JSON state).
func waitEntity(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := do(t, http.MethodGet, url, "")
		if r.status == http.StatusOK && string(r.body) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("entity %s never held %s: %d %s", url, want, r.status, r.body)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// TestDashboardUnderHost fetches the dashboard's files through the host
// emulator, which invokes the DurableTaskUI function the way the Functions
// host does (the file path only in the route parameter, the answer's body
// carried as a JSON string): each arrives whole, with its type and the CSP.
func TestDashboardUnderHost(t *testing.T) {
	host := startHost(t, "./e2e/testapp", appEnv(t, azuritetest.HubName(t), "CRASHTEST_DIR="+t.TempDir()))
	ui := host.URL() + "/api/durabletask/ui/"
	for _, tc := range []struct{ path, contentType, file string }{
		{"", "text/html; charset=utf-8", "index.html"},
		{"app.js", "text/javascript; charset=utf-8", "app.js"},
		{"style.css", "text/css; charset=utf-8", "style.css"},
	} {
		r := do(t, http.MethodGet, ui+tc.path, "")
		want, err := os.ReadFile(filepath.Join(moduleRoot(t), "handler", "dashboard", "static", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusOK || !bytes.Equal(r.body, want) {
			t.Fatalf("GET %s: %d, %d bytes, want 200 and the %d bytes of %s", ui+tc.path, r.status, len(r.body), len(want), tc.file)
		}
		if ct, csp := r.header.Get("Content-Type"), r.header.Get("Content-Security-Policy"); ct != tc.contentType || csp != dashboard.CSP {
			t.Fatalf("GET %s: Content-Type %q, CSP %q", ui+tc.path, ct, csp)
		}
	}
	if r := do(t, http.MethodGet, ui+"missing.js", ""); r.status != http.StatusNotFound {
		t.Fatalf("GET missing.js: %d %s", r.status, r.body)
	}
	if errs := host.InvocationErrors(); len(errs) > 0 {
		t.Fatalf("the host emulator saw invocation errors: %v", errs)
	}
}
