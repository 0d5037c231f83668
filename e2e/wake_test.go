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
	root := appRootWithoutLocalSettings(t)
	// The wake function for this hub, as the README says to write it for a
	// custom hub name.
	fn := `{"bindings":[{"name":"wake","type":"queueTrigger","direction":"in","queueName":"` + wake.QueueName(hub) + `","connection":"AzureWebJobsStorage"}]}`
	if err := os.WriteFile(filepath.Join(root, "DurableTaskWake", "function.json"), []byte(fn), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := func(worker string) hostemulator.Options {
		return hostemulator.Options{AppRoot: root, Executable: binary(t, "./e2e/testapp"), QueuePollInterval: 100 * time.Millisecond,
			Env: []string{"AzureWebJobsStorage=" + conn, "DURABLE_TASK_HUB=" + hub, "DURABLE_WORKER_ID=" + worker,
				"DURABLE_MIN_POLL_INTERVAL=10m", "DURABLE_MAX_POLL_INTERVAL=10m", "CRASHTEST_DIR=" + t.TempDir()}}
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
	assertQueueEmpty(t, wakeQueue)

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
	assertQueueEmpty(t, wakeQueue)

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
	assertQueueEmpty(t, wakeQueue)

	outputs := map[string]string{timerID: `"` + fireAt.Format(time.RFC3339Nano) + `"`, startID: `"from afar"`, cliID: `"by the CLI"`}
	checkInvariants(t, hub, []string{timerID, startID, cliID}, func(id string) string { return outputs[id] })
	for _, h := range []*hostemulator.Host{hostA, hostB} {
		if errs := h.InvocationErrors(); len(errs) > 0 {
			t.Errorf("invocation errors: %v", errs)
		}
	}
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

func assertQueueEmpty(t *testing.T, q *azqueue.QueueClient) {
	t.Helper()
	p, err := q.GetProperties(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := *p.ApproximateMessagesCount; n != 0 {
		t.Errorf("the wake queue holds %d messages", n)
	}
}
