package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/faultproxy"
	"github.com/go-durable/durablefunctions/internal/invariants"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// This file holds the fault tests: several workers of e2e/testapp on one
// hub under a steady load of orchestrations, one fault per test (a worker
// stalled past its lease, repeated SIGKILLs, storage calls that fail), and
// at the end the invariant check of package invariants over every instance
// in the hub.

// loadSleeps are the activity durations of Load instances, in turn.
var loadSleeps = []int{20, 150, 600}

// faultRun is the load and the bookkeeping of one fault test.
type faultRun struct {
	t       *testing.T
	hub     string
	store   *azurestorage.Store // straight to Azurite
	checker *invariants.Checker
	worklog string
	client  *http.Client

	mu        sync.Mutex
	next      int                        // number of starts attempted
	acked     map[string]invariants.Want // acknowledged instance → expected outcome
	order     []string                   // acknowledged instances in order
	startErrs map[string]int             // why starts were not acknowledged
}

func newFaultRun(t *testing.T) *faultRun {
	t.Helper()
	hub := azuritetest.HubName(t)
	cs := azuritetest.ConnectionString(t)
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: cs, HubName: hub})
	if err != nil {
		t.Fatal(err)
	}
	checker, err := invariants.New(invariants.Options{ConnectionString: cs, HubName: hub, DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &faultRun{
		t: t, hub: hub, store: store, checker: checker,
		worklog: filepath.Join(t.TempDir(), "work.log"),
		client:  &http.Client{Timeout: 30 * time.Second},
		acked:   map[string]invariants.Want{}, startErrs: map[string]int{},
	}
}

// env is the environment of a worker: short leases and visibility, the
// worker's ID and the activity execution log.
func (r *faultRun) env(workerID string, extra ...string) []string {
	return appEnv(r.t, r.hub, append([]string{
		"DURABLE_WORKER_ID=" + workerID,
		"WORKLOG=" + r.worklog,
	}, extra...)...)
}

// wantFor is the outcome of an orchestration started with name and input.
func wantFor(name, input string) (invariants.Want, error) {
	switch name {
	case "Orchestrator":
		return invariants.Want{Status: history.StatusCompleted, Output: wantOutput}, nil
	case "Load":
		var in struct {
			Tag   string `json:"tag"`
			Steps int    `json:"steps"`
		}
		if err := json.Unmarshal([]byte(input), &in); err != nil {
			return invariants.Want{}, fmt.Errorf("input of Load %q: %w", input, err)
		}
		out := []string{}
		for i := 1; i <= in.Steps; i++ {
			out = append(out, fmt.Sprintf("%s/%d", in.Tag, i))
		}
		b, _ := json.Marshal(out)
		return invariants.Want{Status: history.StatusCompleted, Output: string(b)}, nil
	}
	return invariants.Want{}, fmt.Errorf("no expected outcome for orchestrator %q", name)
}

// startOne starts the next orchestration of the load through base: every
// fourth is the sample, the others Load with a short, medium or long
// activity.
// drainLimit bounds how long a fault test waits for every instance to
// finish once the faults have stopped.
const drainLimit = 60 * time.Second

func (r *faultRun) startOne(base string) {
	r.mu.Lock()
	n := r.next
	r.next++
	r.mu.Unlock()
	name, input := "Orchestrator", ""
	if n%4 != 0 {
		name = "Load"
		input = fmt.Sprintf(`{"tag":"L%d","steps":3,"sleepMs":%d}`, n, loadSleeps[n%len(loadSleeps)])
	}
	want, err := wantFor(name, input)
	if err != nil {
		r.t.Error(err)
		return
	}
	fail := func(why string) {
		r.mu.Lock()
		r.startErrs[why]++
		r.mu.Unlock()
	}
	var body io.Reader
	if input != "" {
		body = strings.NewReader(input)
	}
	resp, err := r.client.Post(base+"/api/orchestrators/"+name, "application/json", body)
	if err != nil {
		fail("transport error")
		return
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusAccepted {
		var apiErr struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal(b, &apiErr)
		fail(strings.TrimSpace(fmt.Sprintf("HTTP %d %s", resp.StatusCode, apiErr.Error.Code)))
		if resp.StatusCode == http.StatusConflict {
			r.t.Errorf("a start without an instance ID answered 409: %s", b)
		}
		return
	}
	var cs checkStatus
	if err := json.Unmarshal(b, &cs); err != nil || cs.ID == "" {
		r.t.Errorf("start answered 202 with %s", b)
		return
	}
	r.mu.Lock()
	r.acked[cs.ID] = want
	r.order = append(r.order, cs.ID)
	r.mu.Unlock()
}

// acknowledged returns the acknowledged instances so far.
func (r *faultRun) acknowledged() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

// load starts an orchestration every interval through one of targets()
// (round robin; none while targets() is empty) until stop is called, which
// waits for the starts in flight.
func (r *faultRun) load(interval time.Duration, targets func() []string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if bases := targets(); len(bases) > 0 {
				wg.Add(1)
				go func() { defer wg.Done(); r.startOne(bases[i%len(bases)]) }()
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// observe lets the checker look at the Instances rows of acknowledged
// instances every 250 ms, so that it records each finished row as it was
// when first seen, until stop is called.
func (r *faultRun) observe() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if ids := r.acknowledged(); len(ids) > 0 {
				_, _, _ = r.checker.Observe(ctx, ids) // a failed look is retried at the next tick
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// waitFor polls cond every 100 ms until it holds; it fails the test after
// timeout.
func (r *faultRun) waitFor(timeout time.Duration, what string, cond func() bool) {
	r.t.Helper()
	if !r.poll(timeout, cond) {
		r.t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// poll polls cond every 100 ms until it holds (true) or timeout passes
// (false).
func (r *faultRun) poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond) // polling storage
	}
	return true
}

// owners returns how many live partitions each worker holds.
func (r *faultRun) owners() map[string]int {
	leases, err := r.store.ReadPartitions(context.Background())
	if err != nil {
		r.t.Logf("read partitions: %v", err)
		return nil
	}
	m := map[string]int{}
	now := time.Now()
	for _, l := range leases {
		if l.CurrentOwner != "" && now.Before(l.ExpiresAt) {
			m[l.CurrentOwner]++
		}
	}
	return m
}

// countRuns reads the activity execution log: runs per "instance task".
func (r *faultRun) countRuns() map[string]int {
	f, err := os.Open(r.worklog)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int{}
	}
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	runs := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		runs[sc.Text()]++
	}
	if err := sc.Err(); err != nil {
		r.t.Fatal(err)
	}
	return runs
}

// finish waits for every instance in the hub to finish, checks the
// invariants over all of them and logs the figures of the run: instances,
// what was injected (faults), duplicate activity executions, time to drain
// (from drainFrom, when the last fault ended).
func (r *faultRun) finish(drainFrom time.Time, faults string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	acked := r.acknowledged()
	if len(acked) == 0 {
		r.t.Fatal("no start was acknowledged")
	}

	// Every instance in the hub counts, acknowledged or not: a start whose
	// answer was lost must still complete, or leave nothing behind.
	want := map[string]invariants.Want{}
	r.mu.Lock()
	for id, w := range r.acked {
		want[id] = w
	}
	r.mu.Unlock()
	rows, err := r.allRows(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	unacked := 0
	for _, row := range rows {
		if _, ok := want[row.InstanceID]; ok {
			continue
		}
		unacked++
		w, err := wantFor(row.Name, row.Input)
		if err != nil {
			r.t.Errorf("instance %s: %v", row.InstanceID, err)
			continue
		}
		want[row.InstanceID] = w
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	// Retries back off up to tens of seconds by design (deferred starts,
	// messages released after repeated failures), so the drain may take a
	// while on a loaded machine; the figures report how long it took.
	waitCtx, cancelWait := context.WithTimeout(ctx, drainLimit)
	waitErr := r.checker.WaitFinished(waitCtx, ids)
	cancelWait()
	finished := time.Since(drainFrom)
	vs, err := r.checker.Check(ctx, ids, func(id string) invariants.Want { return want[id] })
	if err != nil {
		r.t.Fatal(err)
	}
	drained := time.Since(drainFrom)

	runs := r.countRuns()
	loadInstances, dupRuns, dupInstances := 0, 0, map[string]bool{}
	for id, w := range want {
		if !strings.HasPrefix(w.Output, `["L`) {
			continue
		}
		loadInstances++
		for task := range 3 {
			if n := runs[fmt.Sprintf("%s %d", id, task)]; n > 1 {
				dupRuns += n - 1
				dupInstances[id] = true
			}
		}
	}
	r.mu.Lock()
	startErrs := fmt.Sprint(r.startErrs)
	attempted := r.next
	r.mu.Unlock()
	r.t.Logf("FIGURES %s: starts attempted %d, acknowledged %d, not acknowledged %v; instances checked %d (%d unacknowledged, %d Load); "+
		"faults: %s; duplicate activity executions %d (in %d instances); time to drain %v (all finished after %v); violations %v",
		r.t.Name(), attempted, len(acked), startErrs, len(ids), unacked, loadInstances, faults,
		dupRuns, len(dupInstances), drained.Round(100*time.Millisecond), finished.Round(100*time.Millisecond), invariants.Count(vs))
	if waitErr != nil {
		r.t.Errorf("not all instances finished within %v of the last fault: %v", drainLimit, waitErr)
	}
	if len(vs) > 0 {
		shown := vs
		if len(shown) > 40 {
			shown = shown[:40]
		}
		r.t.Errorf("%d invariant violations (first %d):\n%s", len(vs), len(shown), invariants.Format(shown))
	}
}

// allRows lists every Instances row of the hub, with inputs.
func (r *faultRun) allRows(ctx context.Context) ([]backend.InstanceState, error) {
	var all []backend.InstanceState
	q := backend.InstanceQuery{WithInput: true, PageSize: 1000}
	for {
		rows, next, err := r.store.QueryInstances(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, rows...)
		if next == "" {
			return all, nil
		}
		q.Continuation = next
	}
}

// workers is a set of running app processes, by slot.
type workers struct {
	mu    sync.Mutex
	procs []*process
	ids   []string
	down  map[int]bool // slots not to send starts to (stopped or dead)
}

func (w *workers) bases() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for i, p := range w.procs {
		if !w.down[i] {
			out = append(out, p.base)
		}
	}
	return out
}

func (w *workers) setDown(slot int, down bool) {
	w.mu.Lock()
	w.down[slot] = down
	w.mu.Unlock()
}

func (w *workers) replace(slot int, p *process, id string) {
	w.mu.Lock()
	w.procs[slot], w.ids[slot] = p, id
	w.mu.Unlock()
}

// startWorkers starts n workers named w1..wn.
func (r *faultRun) startWorkers(n int, extra ...string) *workers {
	bin := binary(r.t, "./e2e/testapp")
	w := &workers{down: map[int]bool{}}
	for i := range n {
		id := fmt.Sprintf("w%d", i+1)
		p := startApp(r.t, bin, r.env(id, extra...)...)
		waitReady(r.t, p)
		w.procs = append(w.procs, p)
		w.ids = append(w.ids, id)
	}
	return w
}

// TestStalledWorkerUnderLoad runs two, then three workers on one hub under
// load, freezes (SIGSTOP) the one that owns most partitions until the
// others have taken its partitions over and at least 15 s have passed (its
// lease is 6 s), lets it continue (SIGCONT) while the load goes on, and then
// lets everything drain. The stalled worker must not process what it lost;
// every instance must satisfy the invariants.
func TestStalledWorkerUnderLoad(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d workers", n), func(t *testing.T) {
			r := newFaultRun(t)
			w := r.startWorkers(n, "DURABLE_LEASE_INTERVAL=6s", "DURABLE_MESSAGE_VISIBILITY=4s")
			stopObserve := r.observe()
			defer stopObserve()
			stopLoad := r.load(400*time.Millisecond, w.bases)
			defer stopLoad()

			r.waitFor(30*time.Second, "every worker to own a partition", func() bool {
				o := r.owners()
				total := 0
				for _, id := range w.ids {
					if o[id] == 0 {
						return false
					}
					total += o[id]
				}
				return total == r.store.PartitionCount()
			})
			r.waitFor(20*time.Second, "some instances under way", func() bool { return len(r.acknowledged()) >= 8 })
			o := r.owners()
			victim := 0
			for i, id := range w.ids {
				if o[id] > o[w.ids[victim]] {
					victim = i
				}
			}
			vid, vproc := w.ids[victim], w.procs[victim]
			t.Logf("partition owners %v; stalling %s", o, vid)
			w.setDown(victim, true)
			if err := vproc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = vproc.cmd.Process.Signal(syscall.SIGCONT) }) // before the process is stopped
			stalled := time.Now()
			const minStall = 15 * time.Second
			r.waitFor(40*time.Second, "the others to take over the stalled worker's partitions", func() bool {
				o := r.owners()
				total := 0
				for _, c := range o {
					total += c
				}
				return o[vid] == 0 && total == r.store.PartitionCount() && time.Since(stalled) >= minStall
			})
			stall := time.Since(stalled)
			if err := vproc.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			w.setDown(victim, false)
			resumed := time.Now()
			before := len(r.acknowledged())
			r.waitFor(20*time.Second, "more starts after the resume", func() bool { return len(r.acknowledged()) >= before+10 })
			stopLoad()
			t.Logf("owners after the resume: %v", r.owners())
			r.finish(resumed, fmt.Sprintf("%s stalled for %v with a 6 s lease", vid, stall.Round(100*time.Millisecond)))
		})
	}
}

// TestRepeatedKillsAcrossWorkers runs three workers under load and kills
// one at random with SIGKILL five times, restarting it each time under a
// new worker ID, then lets everything drain.
func TestRepeatedKillsAcrossWorkers(t *testing.T) {
	r := newFaultRun(t)
	extra := []string{"DURABLE_LEASE_INTERVAL=3s", "DURABLE_MESSAGE_VISIBILITY=2s"}
	w := r.startWorkers(3, extra...)
	bin := binary(t, "./e2e/testapp")
	stopObserve := r.observe()
	defer stopObserve()
	stopLoad := r.load(250*time.Millisecond, w.bases)
	defer stopLoad()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 11))
	var kills []string
	for k := range 5 {
		time.Sleep(time.Duration(1500+rng.IntN(2500)) * time.Millisecond) // the random kill moment is the test's input
		slot := rng.IntN(3)
		w.setDown(slot, true)
		w.mu.Lock()
		p, id := w.procs[slot], w.ids[slot]
		w.mu.Unlock()
		p.kill()
		kills = append(kills, id)
		newID := fmt.Sprintf("w%d.%d", slot+1, k+1)
		w.replace(slot, startApp(t, bin, r.env(newID, extra...)...), newID)
		w.setDown(slot, false)
	}
	before := len(r.acknowledged())
	r.waitFor(20*time.Second, "more starts after the last restart", func() bool { return len(r.acknowledged()) >= before+8 })
	stopLoad()
	r.finish(time.Now(), fmt.Sprintf("SIGKILL of %v (seed %d)", kills, seed))
}

// TestKilledWorkersPartitionIsTakenOver runs four workers, one partition
// each, under load, and kills one for good: the three left must take its
// partition over once the lease expires, and every instance must complete.
// The victim owns the last partition: each survivor already holds its "fair
// share" (4/3 rounded down) when its pass reaches that row, so a claim rule
// that caps a worker at that share leaves the partition orphaned.
func TestKilledWorkersPartitionIsTakenOver(t *testing.T) {
	r := newFaultRun(t)
	const lease = 3 * time.Second
	w := r.startWorkers(4, "DURABLE_LEASE_INTERVAL=3s", "DURABLE_MESSAGE_VISIBILITY=2s")
	stopObserve := r.observe()
	defer stopObserve()
	stopLoad := r.load(250*time.Millisecond, w.bases)
	defer stopLoad()
	r.waitFor(30*time.Second, "one partition per worker", func() bool {
		o := r.owners()
		for _, id := range w.ids {
			if o[id] != 1 {
				return false
			}
		}
		return true
	})
	r.waitFor(20*time.Second, "some instances under way", func() bool { return len(r.acknowledged()) >= 8 })
	// The owner of the last partition: every other worker meets its own
	// partition first in a pass, so a capped claim rule never gets to it.
	leases, err := r.store.ReadPartitions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	victim := slices.Index(w.ids, leases[len(leases)-1].CurrentOwner)
	if victim < 0 {
		t.Fatalf("the last partition's owner %q is none of %v", leases[len(leases)-1].CurrentOwner, w.ids)
	}
	t.Logf("killing %s, owner of %s", w.ids[victim], leases[len(leases)-1].QueueName)
	w.setDown(victim, true)
	w.procs[victim].kill()
	killed := time.Now()
	takenOver := r.poll(lease+10*time.Second, func() bool {
		o := r.owners()
		total := 0
		for _, c := range o {
			total += c
		}
		return o[w.ids[victim]] == 0 && total == r.store.PartitionCount()
	})
	if !takenOver {
		t.Errorf("the partition of killed %s was not taken over within %v of the kill (lease %v); owners %v",
			w.ids[victim], time.Since(killed).Round(100*time.Millisecond), lease, r.owners())
	}
	before := len(r.acknowledged())
	r.waitFor(20*time.Second, "more starts after the kill", func() bool { return len(r.acknowledged()) >= before+8 })
	stopLoad()
	r.finish(killed, fmt.Sprintf("SIGKILL of %s, not restarted (partition taken over: %v)", w.ids[victim], takenOver))
}

// proxiedConnectionString starts a front end of p for each endpoint of the
// test account and returns a connection string naming them.
func proxiedConnectionString(t *testing.T, p *faultproxy.Proxy) string {
	t.Helper()
	acct := storageAccount(t)
	front := func(endpoint string) string {
		base, err := p.Listen(endpoint)
		if err != nil {
			t.Fatal(err)
		}
		return base + "/" + acct.Name
	}
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;QueueEndpoint=%s;TableEndpoint=%s;",
		acct.Name, acct.Key, front(acct.BlobEndpoint), front(acct.QueueEndpoint), front(acct.TableEndpoint))
}

// TestStorageFaults runs the app behind faultproxy, which fails 5 % of its
// storage calls (a quarter each: 503 ServerBusy, connection reset, a call
// held 7 s, longer than the 2 s a partition pass allows its calls and than
// the 3 s renewal margin of the 6 s lease, and a committed write whose
// answer is lost) while 200 orchestrations are started; then the faults
// stop. Every acknowledged start must complete, and every
// instance in the hub must satisfy the invariants.
func TestStorageFaults(t *testing.T) {
	r := newFaultRun(t)
	seed := uint64(time.Now().UnixNano())
	proxy, err := faultproxy.New(faultproxy.Options{
		Rates: faultproxy.Rates{ServerBusy: 0.0125, Reset: 0.0125, Timeout: 0.0125, LostResponse: 0.0125},
		Seed:  seed,
		Delay: 7 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cs := proxiedConnectionString(t, proxy)
	bin := binary(t, "./e2e/testapp")
	p := startApp(t, bin, r.env("w1", "AzureWebJobsStorage="+cs, "DURABLE_LEASE_INTERVAL=6s", "DURABLE_MESSAGE_VISIBILITY=4s")...)
	waitReady(t, p) // faults from the first call would only test the patient start
	stopObserve := r.observe()
	defer stopObserve()

	proxy.SetEnabled(true)
	began := time.Now()
	const starts, parallel = 200, 8
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for range starts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.startOne(p.base)
		}()
	}
	wg.Wait()
	proxy.SetEnabled(false)
	stats := proxy.Stats()
	t.Logf("starts took %v", time.Since(began).Round(100*time.Millisecond))
	r.finish(time.Now(), fmt.Sprintf("%v (seed %d)", stats, seed))
}
