package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/hostemulator"
	"github.com/go-durable/durablefunctions/internal/rawstorage"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/history"
	"github.com/go-durable/durablefunctions/taskhub/wake"
)

// wakeTimerSeconds is the timer of the scale-from-zero test: long enough
// for worker A to be stopped and worker B to start and go idle first.
const wakeTimerSeconds = 10

// TestWakeFromZero is the scale-from-zero acceptance test. Both workers
// poll their queues only every 10 minutes (DURABLE_MIN/MAX_POLL_INTERVAL),
// so what they process within the test, they process because a wake
// message reached them through the host emulator's queue listener:
//
//   - timer: worker A schedules a durable timer and is stopped; worker B
//     starts, claims the partitions, polls them once and goes idle before
//     the timer is due; the wake message A sent with the timer becomes
//     visible when it is due, B's host delivers it, B polls and the
//     orchestration completes;
//   - start for an unowned partition: this test process, which owns no
//     partition, starts an instance through a client over Azure Storage,
//     and then the durable command in storage mode starts another; each
//     wake reaches B, which polls and runs the instance.
func TestWakeFromZero(t *testing.T) {
	hub := azuritetest.HubName(t)
	conn := azuritetest.ConnectionString(t)
	root := wakeAppRoot(t, hub)
	opts := func(worker string) hostemulator.Options {
		return hostemulator.Options{AppRoot: root, Executable: binary(t, "./e2e/testapp"), QueuePollInterval: 100 * time.Millisecond,
			Env: []string{"AzureWebJobsStorage=" + conn, "DURABLE_TASK_HUB=" + hub, "DURABLE_WORKER_ID=" + worker,
				"DURABLE_MIN_POLL_INTERVAL=10m", "DURABLE_MAX_POLL_INTERVAL=10m", "CRASHTEST_DIR=" + t.TempDir(),
				// The watchdog wake a worker holds while busy is deleted
				// within 2 s of its going idle.
				"DURABLE_MESSAGE_VISIBILITY=6s"}}
	}
	queues, err := rawstorage.Queues(conn)
	if err != nil {
		t.Fatal(err)
	}
	wakeQueue := queues.NewQueueClient(wake.QueueName(hub))

	// Timer: scheduled by A, due while only B runs.
	hostA := startHostWith(t, opts("worker-a"))
	r := do(t, http.MethodPost, hostA.URL()+"/api/durabletask/orchestrators/WakeTimer", `10`)
	if r.status != http.StatusAccepted {
		t.Fatalf("start on A: %d %s", r.status, r.body)
	}
	timerID := decode[checkStatus](t, r.body).ID
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: conn, HubName: hub})
	if err != nil {
		t.Fatal(err)
	}
	fireAt := waitTimerCreated(t, store, timerID)
	stopGracefully(t, hostA)

	hostB := startHostWith(t, opts("worker-b"))
	if _, err := hostB.WaitForLog(t.Context(), func(l hostemulator.LogLine) bool {
		return strings.Contains(l.Text, "task hub engine started") && strings.Contains(l.Text, "worker-b")
	}); err != nil {
		t.Fatal(err)
	}
	if ready := time.Now(); !ready.Before(fireAt) {
		t.Fatalf("worker B was ready at %v, after the timer was due (%v): the machine is too slow for this test's %d s timer",
			ready, fireAt, wakeTimerSeconds)
	}
	done := waitCompletedRow(t, store, timerID)
	t.Logf("timer: due %s, completed %v after the due time (B polls every 10 minutes on its own)",
		fireAt.Format(time.RFC3339Nano), done.Sub(fireAt).Round(time.Millisecond))
	ws := wakeDeliveries(hostB)
	if len(ws) != 1 || ws[0].Err != nil || ws[0].msg.Reason != backend.WakeTimer || ws[0].msg.Hub != hub || ws[0].At.After(done) {
		t.Fatalf("wake deliveries on B: %+v, want one timer wake of hub %s before the completion at %v", ws, hub, done)
	}
	if d := ws[0].msg.DueTime.Sub(fireAt); d < -time.Second || d > time.Second {
		t.Errorf("the wake's dueTime %v is not the timer's %v", ws[0].msg.DueTime, fireAt)
	}
	if len(wakeDeliveries(hostA)) != 0 {
		t.Errorf("worker A's host delivered wakes: %+v", wakeDeliveries(hostA))
	}
	assertQueueDrained(t, wakeQueue)

	// Start for an unowned partition: this process owns none.
	c := client.New(wake.New(store, wake.Options{}), nil, nil)
	sent := time.Now()
	startID, err := c.StartNew(t.Context(), "Echo", client.StartOptions{Input: "from afar"})
	if err != nil {
		t.Fatal(err)
	}
	done = waitCompletedRow(t, store, startID)
	t.Logf("start: sent by a process without partitions, completed %v later", done.Sub(sent).Round(time.Millisecond))
	ws = wakeDeliveries(hostB)
	if len(ws) != 2 || ws[1].Err != nil || ws[1].msg.Reason != backend.WakeStart || ws[1].At.After(done) {
		t.Fatalf("wake deliveries on B: %+v, want a start wake second, before the completion at %v", ws, done)
	}
	assertQueueDrained(t, wakeQueue)

	// The same through the command-line tool in storage mode, a process of
	// its own that owns no partition either.
	cli := cliRunner{t: t, bin: binary(t, "./cmd/durable"), flags: []string{"--storage", conn, "--hub", hub}}
	sent = time.Now()
	cliID := strings.TrimSpace(cli.ok("start", "Echo", "--id", "wake-cli", "--input", `"by the CLI"`))
	done = waitCompletedRow(t, store, cliID)
	t.Logf("start: sent by the CLI in storage mode, completed %v later", done.Sub(sent).Round(time.Millisecond))
	ws = wakeDeliveries(hostB)
	if len(ws) != 3 || ws[2].Err != nil || ws[2].msg.Reason != backend.WakeStart || ws[2].At.After(done) {
		t.Fatalf("wake deliveries on B: %+v, want the CLI's start wake third, before the completion at %v", ws, done)
	}
	assertQueueDrained(t, wakeQueue)

	outputs := map[string]string{timerID: `"` + fireAt.Format(time.RFC3339Nano) + `"`, startID: `"from afar"`, cliID: `"by the CLI"`}
	checkInvariants(t, hub, []string{timerID, startID, cliID}, func(id string) string { return outputs[id] })
	for _, h := range []*hostemulator.Host{hostA, hostB} {
		if errs := h.InvocationErrors(); len(errs) > 0 {
			t.Errorf("invocation errors: %v", errs)
		}
	}
}

// wakeAppRoot is the sample's app root with the wake function for hub, as
// the README says to write it for a custom hub name.
func wakeAppRoot(t *testing.T, hub string) string {
	t.Helper()
	root := appRootWithoutLocalSettings(t)
	fn := `{"bindings":[{"name":"wake","type":"queueTrigger","direction":"in","queueName":"` + wake.QueueName(hub) + `","connection":"AzureWebJobsStorage"}]}`
	if err := os.WriteFile(filepath.Join(root, "DurableTaskWake", "function.json"), []byte(fn), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestWatchdogWakeAfterKill: the platform stops an instance while its
// worker holds work, and the host kills the handler (no graceful stop).
// Worker A runs CrashTest under the host emulator with wakes on and one
// partition; its step two blocks. Worker B runs beside it, owns nothing
// (A holds the one partition) and polls only every 10 minutes. A is
// killed while step two runs, right after it pushed its watchdog wake's
// visibility forward: its partition lease expires after 1 s and B claims
// the partition and polls it once, but the instance's recovery anchor is
// still hidden (12 s visibility), so without A's watchdog wake B would not
// look again for 10 minutes. The wake becomes visible 18 s after A's last
// push, once the anchor is; B's host delivers it, B polls, step two runs
// again and the instance completes. Afterwards the wake queue is empty
// (B's own watchdog wake is deleted once B is idle) and the invariants
// hold.
func TestWatchdogWakeAfterKill(t *testing.T) {
	r := newWatchdogRun(t)
	hostA, hostB, id := r.startBlocked()
	// Kill A once it has pushed its wake's visibility forward (it logs
	// that at debug level), so that the wake's visibility is the push's.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	pushed, err := hostA.WaitForLog(ctx, func(l hostemulator.LogLine) bool { return strings.Contains(l.Text, "watchdog: wake pushed") })
	if err != nil {
		t.Fatalf("A did not push its watchdog wake: %v", err)
	}
	if n := queueCount(t, r.wakeQueue); n != 1 {
		t.Fatalf("the wake queue holds %d messages before the kill, want A's watchdog wake", n)
	}

	// The platform stops A's instance: the host kills the handler
	// (SIGKILL) and stops listening; nothing restarts it.
	pidA := hostA.PID()
	killed := time.Now()
	if err := hostA.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pidA, 0); err == nil {
		t.Fatalf("A's handler (pid %d) still runs after the kill", pidA)
	}
	// Step two's first run died with A; its re-run may finish.
	if err := os.WriteFile(filepath.Join(r.dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	done := waitCompletedRow(t, r.store, id)
	t.Logf("watchdog: A killed while step two ran; completed by B %v later (B polls every 10 minutes on its own)",
		done.Sub(killed).Round(time.Millisecond))
	w := r.oneWatchdogWake(hostA, hostB, done)
	t.Logf("the watchdog wake reached B %v after the kill, %v after A's last push", w.At.Sub(killed).Round(time.Millisecond),
		w.At.Sub(pushed.Time).Round(time.Millisecond))
	// Hidden 18 s from the push (12 s + max(1 s, 4 s + 1 s) + 1 s); from
	// its creation, 4 s before the push, it would have shown 4 s sooner.
	if d := w.At.Sub(pushed.Time); d < 17*time.Second {
		t.Errorf("the wake was delivered %v after A's last push, want about 18 s: the push did not hide it longer", d)
	}
	r.check(hostB, id, "one\ntwo\ntwo\nthree\n")
}

// TestWatchdogWakeAfterGracefulStop: a graceful stop that leaves work for
// another worker makes the watchdog wake visible 5 s later. A is stopped
// (SIGTERM) while step two runs; step two then finishes within the grace,
// and the episode that follows sends step three to the shared work-item
// queue, since a draining worker starts no activity. A stops cleanly, its
// wake shows 5 s later, B (polling every 10 minutes) receives it, polls
// the work-item queue and finishes the instance; nothing runs twice.
func TestWatchdogWakeAfterGracefulStop(t *testing.T) {
	r := newWatchdogRun(t)
	hostA, hostB, id := r.startBlocked()
	if err := syscall.Kill(hostA.PID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := hostA.WaitForLog(ctx, func(l hostemulator.LogLine) bool { return strings.Contains(l.Text, `msg=stopping`) }); err != nil {
		t.Fatalf("A did not begin to stop: %v", err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	left, err := hostA.WaitForLog(ctx, func(l hostemulator.LogLine) bool {
		return strings.Contains(l.Text, "the stop left work for another worker")
	})
	if err != nil {
		t.Fatalf("A did not leave a wake for the work its stop left: %v", err)
	}
	if _, err := hostA.WaitForLog(ctx, func(l hostemulator.LogLine) bool { return strings.Contains(l.Text, "stopped cleanly") }); err != nil {
		t.Fatalf("A did not stop cleanly: %v", err)
	}
	if err := hostA.Stop(); err != nil { // the host stops listening
		t.Fatal(err)
	}
	done := waitCompletedRow(t, r.store, id)
	w := r.oneWatchdogWake(hostA, hostB, done)
	t.Logf("graceful stop: the watchdog wake reached B %v after A left it, the instance completed %v after that",
		w.At.Sub(left.Time).Round(time.Millisecond), done.Sub(w.At).Round(time.Millisecond))
	if d := w.At.Sub(left.Time); d < 4*time.Second {
		t.Errorf("the wake was delivered %v after A's stop, want about 5 s", d)
	}
	r.check(hostB, id, "one\ntwo\nthree\n")
}

// watchdogRun is a hub for the watchdog tests: CrashTest under two
// emulated hosts with wakes on, one partition, a 12 s message visibility,
// a 1 s lease, and polling every 10 minutes.
type watchdogRun struct {
	t               *testing.T
	hub, conn, root string
	dir             string
	wakeQueue       *azqueue.QueueClient
	store           *azurestorage.Store
}

func newWatchdogRun(t *testing.T) *watchdogRun {
	t.Helper()
	r := &watchdogRun{t: t, hub: azuritetest.HubName(t), conn: azuritetest.ConnectionString(t), dir: t.TempDir()}
	r.root = wakeAppRoot(t, r.hub)
	queues, err := rawstorage.Queues(r.conn)
	if err != nil {
		t.Fatal(err)
	}
	r.wakeQueue = queues.NewQueueClient(wake.QueueName(r.hub))
	if r.store, err = azurestorage.New(azurestorage.Options{ConnectionString: r.conn, HubName: r.hub}); err != nil {
		t.Fatal(err)
	}
	return r
}

// startHost starts worker's host and waits until its engine runs.
func (r *watchdogRun) startHost(worker string) *hostemulator.Host {
	t := r.t
	t.Helper()
	h := startHostWith(t, hostemulator.Options{AppRoot: r.root, Executable: binary(t, "./e2e/testapp"), QueuePollInterval: 100 * time.Millisecond,
		Env: []string{"AzureWebJobsStorage=" + r.conn, "DURABLE_TASK_HUB=" + r.hub, "DURABLE_WORKER_ID=" + worker,
			"DURABLE_PARTITION_COUNT=1", "DURABLE_MESSAGE_VISIBILITY=12s", "DURABLE_LEASE_INTERVAL=1s", "DURABLE_LOG_LEVEL=debug",
			"DURABLE_MIN_POLL_INTERVAL=10m", "DURABLE_MAX_POLL_INTERVAL=10m", "CRASHTEST_DIR=" + r.dir}})
	if _, err := h.WaitForLog(t.Context(), func(l hostemulator.LogLine) bool {
		return strings.Contains(l.Text, "task hub engine started") && strings.Contains(l.Text, worker)
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

// startBlocked starts worker A, which takes the partition, and CrashTest
// on it, then worker B, which owns nothing, and waits until step two
// blocks on A.
func (r *watchdogRun) startBlocked() (hostA, hostB *hostemulator.Host, id string) {
	t := r.t
	t.Helper()
	hostA = r.startHost("worker-a") // A owns the partition: its start is handed over in memory, no wake
	resp := do(t, http.MethodPost, hostA.URL()+"/api/orchestrators/CrashTest", `"watched"`)
	if resp.status != http.StatusAccepted {
		t.Fatalf("start on A: %d %s", resp.status, resp.body)
	}
	id = decode[checkStatus](t, resp.body).ID
	hostB = r.startHost("worker-b")
	waitUntilTrue(t, 30*time.Second, "step two runs on A", func() bool {
		_, err := os.Stat(filepath.Join(r.dir, "blocked"))
		return err == nil
	})
	if n := queueCount(t, r.wakeQueue); n > 1 {
		t.Fatalf("the wake queue holds %d messages while A runs, want at most A's watchdog wake", n)
	}
	return hostA, hostB, id
}

// oneWatchdogWake checks that B's host delivered one wake, the watchdog's,
// before the instance completed at done, and A's none; it returns it.
func (r *watchdogRun) oneWatchdogWake(hostA, hostB *hostemulator.Host, done time.Time) wakeDelivery {
	t := r.t
	t.Helper()
	ws := wakeDeliveries(hostB)
	if len(ws) != 1 || ws[0].Err != nil || ws[0].msg.Reason != backend.WakeWatchdog || ws[0].msg.Hub != r.hub || ws[0].At.After(done) {
		t.Fatalf("wake deliveries on B: %+v, want one watchdog wake of hub %s before the completion at %v", ws, r.hub, done)
	}
	if len(wakeDeliveries(hostA)) != 0 {
		t.Errorf("A's host delivered wakes: %+v", wakeDeliveries(hostA))
	}
	return ws[0]
}

// check checks the instance's output and activity runs, that the wake
// queue drains (B held a watchdog wake of its own while it worked, and
// deletes it once idle), the invariants, and B's invocations.
func (r *watchdogRun) check(hostB *hostemulator.Host, id, wantRuns string) {
	t := r.t
	t.Helper()
	const want = `["done one","done two","done three"]`
	st, err := r.store.GetInstance(t.Context(), id, false)
	if err != nil || st.Output != want {
		t.Fatalf("instance row: %+v, %v; want output %s", st, err, want)
	}
	runs, err := os.ReadFile(filepath.Join(r.dir, "runs.log"))
	if err != nil {
		t.Fatal(err)
	}
	if string(runs) != wantRuns {
		t.Errorf("activity runs:\n%s\nwant:\n%s", runs, wantRuns)
	}
	assertQueueDrained(t, r.wakeQueue)
	checkInvariantsOf(t, r.hub, 1, []string{id}, func(string) string { return want })
	if errs := hostB.InvocationErrors(); len(errs) > 0 {
		t.Errorf("invocation errors on B: %v", errs)
	}
}

// waitUntilTrue polls cond until it holds, failing the test after timeout.
func waitUntilTrue(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// queueCount is a queue's approximate message count, hidden messages
// included.
func queueCount(t *testing.T, q *azqueue.QueueClient) int32 {
	t.Helper()
	p, err := q.GetProperties(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return *p.ApproximateMessagesCount
}

// waitTimerCreated waits for the instance's history to record its timer
// and returns when it fires.
func waitTimerCreated(t *testing.T, store *azurestorage.Store, id string) time.Time {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		h, err := store.LoadHistory(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range h.Events {
			if ev.Type == history.TimerCreated {
				return ev.FireAt
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("instance %s recorded no timer within 20 s", id)
	return time.Time{}
}

// waitCompletedRow polls the instance's status row until it is Completed and
// returns when that was seen.
func waitCompletedRow(t *testing.T, store *azurestorage.Store, id string) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := store.GetInstance(t.Context(), id, false)
		if err == nil && st.Status == history.StatusCompleted {
			return time.Now()
		}
		if err == nil && st.Status.IsTerminal() {
			t.Fatalf("instance %s ended %s: %s", id, st.Status, st.Output)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("instance %s did not complete within 30 s", id)
	return time.Time{}
}

// stopGracefully stops a host's handler as a scale-in does (SIGTERM): the
// engine drains and releases its partitions; the handler exits 0, so the
// emulator does not restart it.
func stopGracefully(t *testing.T, h *hostemulator.Host) {
	t.Helper()
	if err := syscall.Kill(h.PID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := h.WaitForLog(ctx, func(l hostemulator.LogLine) bool { return strings.Contains(l.Text, "stopped cleanly") }); err != nil {
		t.Fatalf("the handler did not stop cleanly: %v", err)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
}

// wakeDelivery is a delivery of the wake function with its message.
type wakeDelivery struct {
	hostemulator.QueueDelivery
	msg backend.WakeMessage
}

func wakeDeliveries(h *hostemulator.Host) []wakeDelivery {
	var out []wakeDelivery
	for _, d := range h.QueueDeliveries() {
		if d.Function != "DurableTaskWake" {
			continue
		}
		w := wakeDelivery{QueueDelivery: d}
		if err := json.Unmarshal([]byte(d.Text), &w.msg); err != nil {
			w.Err = err
		}
		out = append(out, w)
	}
	return out
}

// assertQueueDrained waits until the wake queue is empty: every wake was
// delivered, and the watchdog wake of a worker that was busy meanwhile is
// deleted once it is idle (within its refresh interval).
func assertQueueDrained(t *testing.T, q *azqueue.QueueClient) {
	t.Helper()
	waitUntilTrue(t, 10*time.Second, "the wake queue is drained", func() bool { return queueCount(t, q) == 0 })
}
