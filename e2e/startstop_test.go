package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/tcpproxy"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
)

// storageProxy puts a tcpproxy in front of each of the test account's
// three services.
type storageProxy struct {
	blob, queue, table *tcpproxy.Proxy
	conn               string // connection string through the proxies
}

// newStorageProxy starts the proxies; reachable says whether they forward
// to Azurite from the start (otherwise their upstream is an address where
// nothing listens, until connect).
func newStorageProxy(t *testing.T, reachable bool) *storageProxy {
	t.Helper()
	acct := storageAccount(t)
	sp := &storageProxy{}
	hostOf := func(endpoint string) string {
		u, err := url.Parse(endpoint)
		if err != nil {
			t.Fatal(err)
		}
		return u.Host
	}
	mk := func(endpoint string) *tcpproxy.Proxy {
		up := hostOf(endpoint)
		if !reachable {
			up = freeAddr(t) // nothing listens there
		}
		p, err := tcpproxy.New(up)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	sp.blob, sp.queue, sp.table = mk(acct.BlobEndpoint), mk(acct.QueueEndpoint), mk(acct.TableEndpoint)
	sp.conn = fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=http://%s/%s;QueueEndpoint=http://%s/%s;TableEndpoint=http://%s/%s;",
		acct.Name, acct.Key, sp.blob.Addr(), acct.Name, sp.queue.Addr(), acct.Name, sp.table.Addr(), acct.Name)
	return sp
}

// connect points every proxy at Azurite.
func (sp *storageProxy) connect(t *testing.T) {
	acct := storageAccount(t)
	for p, endpoint := range map[*tcpproxy.Proxy]string{sp.blob: acct.BlobEndpoint, sp.queue: acct.QueueEndpoint, sp.table: acct.TableEndpoint} {
		u, _ := url.Parse(endpoint)
		p.SetUpstream(u.Host)
		p.SetMode(tcpproxy.Forward)
	}
}

// cut makes storage unreachable for the app, the way mode says.
func (sp *storageProxy) cut(mode tcpproxy.Mode) {
	for _, p := range []*tcpproxy.Proxy{sp.blob, sp.queue, sp.table} {
		p.SetMode(mode)
	}
}

// sigterm stops p with SIGTERM and returns how long it took to exit and its
// exit code.
func sigterm(t *testing.T, p *process, limit time.Duration) (time.Duration, int) {
	t.Helper()
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("the app did not exit within %v of SIGTERM:\n%s", limit, p.out.String())
	}
	return time.Since(began), p.cmd.ProcessState.ExitCode()
}

// waitOutput waits until the app's output contains s.
func waitOutput(t *testing.T, p *process, s string, timeout time.Duration) {
	t.Helper()
	waitUntil(t, p, timeout, fmt.Sprintf("%q in the app's output", s), func() bool { return strings.Contains(p.out.String(), s) })
}

// startBlocked starts CrashTest and returns its check-status payload once
// step two runs (and step one is in history).
func startBlocked(t *testing.T, p *process, dir string) checkStatus {
	t.Helper()
	r := do(t, http.MethodPost, p.base+"/api/orchestrators/CrashTest", `{}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	cs := decode[checkStatus](t, r.body)
	waitFile(t, p, filepath.Join(dir, "blocked"), 30*time.Second)
	waitUntil(t, p, 30*time.Second, "step one checkpointed", func() bool {
		return countInHistory(t, p.base, cs.ID, "TaskCompleted") == 1
	})
	return cs
}

// finish restarts the app on storage and checks that the instance completes
// with the right output; it returns the activity runs log.
func finish(t *testing.T, bin string, env []string, dir string, cs checkStatus, old string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startApp(t, bin, env...)
	final := pollStatus(t, strings.Replace(cs.StatusQueryGetURI, old, p.base, 1), 60*time.Second)
	st := decode[statusPayload](t, final.body)
	if st.RuntimeStatus != "Completed" || string(st.Output) != `["done one","done two","done three"]` {
		t.Fatalf("final status: %s", final.body)
	}
	if d, code := sigterm(t, p, 30*time.Second); code != 0 {
		t.Errorf("clean SIGTERM of the second app: exit code %d after %v, want 0:\n%s", code, d, p.out.String())
	}
	runs, err := os.ReadFile(filepath.Join(dir, "runs.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(runs)
}

// TestStopDrainsInFlightWork sends SIGTERM while an activity runs and lets
// the activity finish within the grace: the app records its result, exits
// 0, and the restarted app completes the instance without running the
// activity again.
func TestStopDrainsInFlightWork(t *testing.T) {
	hub := azuritetest.HubName(t)
	dir := t.TempDir()
	env := appEnv(t, hub, "GORACE=atexit_sleep_ms=0", "CRASHTEST_DIR="+dir, "DURABLE_STOP_GRACE=20s", "DURABLE_MESSAGE_VISIBILITY=5s", "DURABLE_LEASE_INTERVAL=6s")
	bin := binary(t, "./e2e/testapp")
	p := startApp(t, bin, env...)
	cs := startBlocked(t, p, dir)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, p, "msg=stopping", 10*time.Second)
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the app did not stop:\n%s", p.out.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after a drained stop, want 0:\n%s", code, p.out.String())
	}
	t.Logf("drained stop: exited 0, %v after the activity was released", time.Since(began).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(dir, "cancelled")); err == nil {
		t.Fatal("the activity's context was cancelled during a stop that drained in time")
	}
	if runs := finish(t, bin, env, dir, cs, p.base); runs != "one\ntwo\nthree\n" {
		t.Fatalf("activity runs:\n%s\nwant each step once (the drained result of two was recorded)", runs)
	}
}

// TestStopWithinGraceWithStorageDown cuts the app off from storage while an
// activity runs and sends SIGTERM: the app interrupts the activity when the
// grace runs out and exits non-zero within the grace plus a bounded margin.
// Once storage is back, a new app completes the instance: the interrupted
// run was not recorded as a failure.
func TestStopWithinGraceWithStorageDown(t *testing.T) {
	const grace = 3 * time.Second
	// The engine's release budget is 2 s; the rest is process start-up and
	// exit on a busy machine.
	const limit = grace + 6*time.Second
	for _, mode := range []tcpproxy.Mode{tcpproxy.Refuse, tcpproxy.Blackhole} {
		t.Run(mode.String(), func(t *testing.T) {
			hub := azuritetest.HubName(t)
			dir := t.TempDir()
			sp := newStorageProxy(t, true)
			env := appEnv(t, hub, "GORACE=atexit_sleep_ms=0", "AzureWebJobsStorage="+sp.conn, "CRASHTEST_DIR="+dir,
				"DURABLE_STOP_GRACE="+grace.String(), "DURABLE_MESSAGE_VISIBILITY=2s", "DURABLE_LEASE_INTERVAL=3s")
			bin := binary(t, "./e2e/testapp")
			p := startApp(t, bin, env...)
			cs := startBlocked(t, p, dir)
			sp.cut(mode)
			took, code := sigterm(t, p, 30*time.Second)
			t.Logf("storage %s: SIGTERM to exit %v, exit code %d", mode, took.Round(time.Millisecond), code)
			if code == 0 {
				t.Fatalf("exit code 0 after a stop that had to interrupt work:\n%s", p.out.String())
			}
			if took > limit {
				t.Errorf("the stop took %v, more than the grace %v plus the margin", took, grace)
			}
			if _, err := os.Stat(filepath.Join(dir, "cancelled")); err != nil {
				t.Errorf("the running activity was not told to stop: %v", err)
			}
			for _, want := range []string{"the grace ran out", "did not stop cleanly"} {
				if !strings.Contains(p.out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, p.out.String())
				}
			}
			sp.connect(t)
			runs := finish(t, bin, env, dir, cs, p.base)
			if runs != "one\ntwo\ntwo\nthree\n" {
				t.Fatalf("activity runs:\n%s\nwant one once, two twice (interrupted, then again), three once", runs)
			}
		})
	}
}

// TestStartBeforeStorageIsUp starts the sample app while storage cannot be
// reached: it serves HTTP at once, answers the management API and the
// client function with 503 StorageUnavailable and Retry-After, and once
// storage appears the sample orchestration completes.
func TestStartBeforeStorageIsUp(t *testing.T) {
	hub := azuritetest.HubName(t)
	sp := newStorageProxy(t, false)
	p := startApp(t, binary(t, "."), appEnv(t, hub, "GORACE=atexit_sleep_ms=0", "AzureWebJobsStorage="+sp.conn)...)
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/api/durabletask/instances/some-id"},
		{http.MethodGet, "/api/durabletask/instances"},
		{http.MethodPost, "/api/orchestrators/Orchestrator"},
	} {
		r := do(t, req.method, p.base+req.path, "")
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("%s %s before storage is up: %d %v %s, want 503 with Retry-After", req.method, req.path, r.status, r.header, r.body)
		}
		e := decode[struct {
			Error struct{ Code, Message string } `json:"error"`
		}](t, r.body)
		if e.Error.Code != "StorageUnavailable" || !strings.Contains(e.Error.Message, hub) {
			t.Fatalf("%s %s: error %+v, want code StorageUnavailable and a message naming the hub", req.method, req.path, e.Error)
		}
	}
	waitOutput(t, p, "task hub not ready; retrying", 30*time.Second)

	sp.connect(t)
	var cs checkStatus
	waitUntil(t, p, 60*time.Second, "the app to accept a start", func() bool {
		r := do(t, http.MethodPost, p.base+"/api/orchestrators/Orchestrator", "")
		if r.status == http.StatusAccepted {
			cs = decode[checkStatus](t, r.body)
			return true
		}
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("start: %d %s", r.status, r.body)
		}
		return false
	})
	final := pollStatus(t, cs.StatusQueryGetURI, 60*time.Second)
	if st := decode[statusPayload](t, final.body); st.RuntimeStatus != "Completed" || string(st.Output) != wantOutput {
		t.Fatalf("final status: %s", final.body)
	}
	if took, code := sigterm(t, p, 30*time.Second); code != 0 {
		t.Fatalf("clean SIGTERM: exit code %d after %v, want 0:\n%s", code, took, p.out.String())
	} else {
		t.Logf("clean SIGTERM with storage up: exit 0 after %v", took.Round(time.Millisecond))
	}
}

// runToExit runs bin standalone until it exits by itself and returns its
// exit code and output (with the log's quoting of quotes undone).
func runToExit(t *testing.T, bin string, timeout time.Duration, env ...string) (int, string) {
	t.Helper()
	p := launch(t, bin, env...)
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("the app kept running for %v; it should have refused the hub:\n%s", timeout, p.out.String())
	}
	return p.cmd.ProcessState.ExitCode(), strings.ReplaceAll(p.out.String(), `\"`, `"`)
}

// TestOneAppPerHub runs an app on a hub and then a second app with another
// app name: the second is refused with an error naming the hub and the
// holder. A worker of the same app shares the hub.
func TestOneAppPerHub(t *testing.T) {
	hub := azuritetest.HubName(t)
	bin := binary(t, "./e2e/testapp")
	p1 := startApp(t, bin, appEnv(t, hub, "GORACE=atexit_sleep_ms=0", "DURABLE_APP_NAME=orders", "CRASHTEST_DIR="+t.TempDir())...)
	waitOutput(t, p1, "task hub engine started", 30*time.Second)

	code, out := runToExit(t, bin, 30*time.Second, appEnv(t, hub, "GORACE=atexit_sleep_ms=0", "DURABLE_APP_NAME=billing")...)
	if code == 0 {
		t.Fatalf("a second app on the hub exited 0:\n%s", out)
	}
	for _, want := range []string{"task hub " + hub + " is in use by another app", strings.ToLower(hub) + "-applease", `app "orders"`, `this app is "billing"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}

	// Another worker of the same app runs beside the first.
	p2 := startApp(t, bin, appEnv(t, hub, "GORACE=atexit_sleep_ms=0", "DURABLE_APP_NAME=orders", "CRASHTEST_DIR="+t.TempDir())...)
	waitOutput(t, p2, "task hub engine started", 30*time.Second)
	r := do(t, http.MethodPost, p2.base+"/api/orchestrators/Echo", `"same app"`)
	if r.status != http.StatusAccepted {
		t.Fatalf("start on the second worker: %d %s", r.status, r.body)
	}
	final := pollStatus(t, decode[checkStatus](t, r.body).StatusQueryGetURI, 30*time.Second)
	if st := decode[statusPayload](t, final.body); st.RuntimeStatus != "Completed" || string(st.Output) != `"same app"` {
		t.Fatalf("final status: %s", final.body)
	}
}

// TestPartitionCountMismatchIsRefused runs the app with another partition
// count than the hub has: it exits non-zero saying both counts.
func TestPartitionCountMismatchIsRefused(t *testing.T) {
	hub := azuritetest.HubName(t)
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: azuritetest.ConnectionString(t), HubName: hub, PartitionCount: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := store.CreateTaskHub(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.DeleteTaskHub(context.Background()) })
	for _, n := range []string{"2", "8"} {
		code, out := runToExit(t, binary(t, "./e2e/testapp"), 30*time.Second, appEnv(t, hub, "GORACE=atexit_sleep_ms=0", "DURABLE_PARTITION_COUNT="+n)...)
		if code == 0 {
			t.Fatalf("partition count %s on a hub of 4: exit 0:\n%s", n, out)
		}
		for _, want := range []string{"task hub " + hub + " has 4 partitions", "configured with " + n} {
			if !strings.Contains(out, want) {
				t.Errorf("partition count %s: the refusal does not say %q:\n%s", n, want, out)
			}
		}
	}
}
