package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/hostemulator"
	"github.com/go-durable/durablefunctions/internal/invariants"
	"github.com/go-durable/durablefunctions/internal/rawstorage"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestMain(m *testing.M) { azuritetest.Main(m) }

var (
	buildMu   sync.Mutex
	buildDir  string
	built     = map[string]string{}
	buildErrs = map[string]error{}
)

// binary builds the main package at pkg (relative to the module root) once
// per test binary and returns the executable's path.
func binary(t *testing.T, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	if err, ok := buildErrs[pkg]; ok {
		t.Fatal(err)
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "durable-e2e-bin")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	root := moduleRoot(t)
	out := filepath.Join(buildDir, strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "_")+"-app")
	if pkg == "." {
		out = filepath.Join(buildDir, "durable-app")
	}
	cmd := exec.Command("go", "build", "-race", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		buildErrs[pkg] = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		t.Fatal(buildErrs[pkg])
	}
	built[pkg] = out
	return out
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := azuritetest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// process is a running app binary in standalone mode.
type process struct {
	cmd  *exec.Cmd
	base string
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// launch runs bin standalone with the app root of this module and env,
// without waiting for it to answer HTTP.
func launch(t *testing.T, bin string, env ...string) *process {
	t.Helper()
	return launchIn(t, bin, moduleRoot(t), env...)
}

// launchIn is launch with the app root root.
func launchIn(t *testing.T, bin, root string, env ...string) *process {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(bin, "-addr", addr, "-root", root)
	cmd.Env = append(os.Environ(), env...)
	p := &process{cmd: cmd, base: "http://" + addr, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("app output:\n%s", p.out.String())
		}
	})
	return p
}

// startHost starts the host emulator over the module root with the app
// built from pkg as its custom handler, stopped when the test ends. The
// sample's wake function is disabled (AzureWebJobs.DurableTaskWake.Disabled,
// as on the host): it names the wake queue of the sample's hub, not of the
// test's (see wake_test.go for the tests of it).
func startHost(t *testing.T, pkg string, env []string) *hostemulator.Host {
	t.Helper()
	return startHostWith(t, hostemulator.Options{AppRoot: moduleRoot(t), Executable: binary(t, pkg),
		Env: append([]string{"AzureWebJobs.DurableTaskWake.Disabled=true"}, env...)})
}

// startHostWith starts the host emulator with opts, stopped when the test
// ends (its logs are printed if the test failed).
func startHostWith(t *testing.T, opts hostemulator.Options) *hostemulator.Host {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	host, err := hostemulator.Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		host.Stop()
		cancel()
		if t.Failed() {
			var b strings.Builder
			for _, l := range host.Logs() {
				b.WriteString(l.String() + "\n")
			}
			t.Logf("host emulator log:\n%s", b.String())
		}
	})
	return host
}

// startApp launches bin and waits until it answers HTTP (its task hub may
// still be starting: see waitReady).
func startApp(t *testing.T, bin string, env ...string) *process {
	t.Helper()
	p := launch(t, bin, env...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.base + "/")
		if err == nil {
			resp.Body.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("app exited during start-up:\n%s", p.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("app did not answer within 60s:\n%s", p.out.String())
		}
	}
}

// checkInvariants runs the one invariant check of package invariants over
// ids of hub (each expected Completed with the output want gives, or for
// an entity ID, holding the state want gives) and fails the test with
// every violation.
func checkInvariants(t *testing.T, hub string, ids []string, want func(id string) string) {
	t.Helper()
	checkInvariantsOf(t, hub, 0, ids, want)
}

// checkInvariantsOf is checkInvariants for a hub of partitions control
// queues (0: the default count).
func checkInvariantsOf(t *testing.T, hub string, partitions int, ids []string, want func(id string) string) {
	t.Helper()
	checker, err := invariants.New(invariants.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: hub,
		PartitionCount: partitions, DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := checker.Check(t.Context(), ids, func(id string) invariants.Want {
		if history.IsEntityInstanceID(id) {
			return invariants.Want{EntityState: want(id)}
		}
		return invariants.Want{Status: history.StatusCompleted, Output: want(id)}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) > 0 {
		t.Errorf("%d invariant violations:\n%s", len(vs), invariants.Format(vs))
	}
}

// waitReady waits until the app's task hub is ready: the management API
// stops answering 503 (it does while the engine starts, see funcapp).
func waitReady(t *testing.T, p *process) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.base + "/api/durabletask/instances?top=1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app's task hub was not ready within 60s:\n%s", p.out.String())
		}
		select {
		case <-p.done:
			t.Fatalf("app exited during start-up:\n%s", p.out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *process) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.kill()
	}
}

func appEnv(t *testing.T, hub string, extra ...string) []string {
	return append([]string{
		"AzureWebJobsStorage=" + azuritetest.ConnectionString(t),
		"DURABLE_TASK_HUB=" + hub,
		"DURABLE_MAX_POLL_INTERVAL=500ms",
	}, extra...)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url string, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// checkStatus is the check-status payload HttpStart returns.
type checkStatus = durableapi.ManagementURLs

type statusPayload = durableapi.StatusPayload

// pollStatus follows a status URL (honouring 202 + Location) until the
// instance finishes, and returns the final response.
func pollStatus(t *testing.T, url string, timeout time.Duration) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		r := do(t, http.MethodGet, url, "")
		switch r.status {
		case http.StatusOK:
			return r
		case http.StatusAccepted:
			if loc := r.header.Get("Location"); loc == "" || r.header.Get("Retry-After") == "" {
				t.Fatalf("202 without Location/Retry-After: %v", r.header)
			}
		default:
			t.Fatalf("status query: %d %s", r.status, r.body)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("instance did not finish within %v; last status %s", timeout, r.body)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storageAccount returns the test storage account's name, key and endpoints.
func storageAccount(t *testing.T) azurestorage.Account {
	t.Helper()
	acct, err := azurestorage.ParseConnectionString(azuritetest.ConnectionString(t))
	if err != nil {
		t.Fatal(err)
	}
	return acct
}

// tableService returns a plain SDK client for the test account's tables.
func tableService(t *testing.T) *aztables.ServiceClient {
	t.Helper()
	svc, err := rawstorage.Tables(azuritetest.ConnectionString(t))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// queueService returns a plain SDK client for the test account's queues.
func queueService(t *testing.T) *azqueue.ServiceClient {
	t.Helper()
	svc, err := rawstorage.Queues(azuritetest.ConnectionString(t))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}
