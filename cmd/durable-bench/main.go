// Command durable-bench measures the task hub on the sample orchestration
// against Azurite: the latency of one orchestration at a time, the
// throughput of many at once, and the storage calls each one costs.
//
//	go run ./cmd/durable-bench                 # starts its own Azurite
//	go run ./cmd/durable-bench -storage "..."  # uses a running one
//
// Figures are printed, never judged: machines are shared and noisy, so run
// it several times and compare medians.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hello "github.com/go-durable/durablefunctions/Hello"
	orchestrator "github.com/go-durable/durablefunctions/Orchestrator"
	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "durable-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	storage := flag.String("storage", "", "storage connection string (default: start a private Azurite on disk)")
	sequential := flag.Int("sequential", 30, "orchestrations to run one at a time")
	burst := flag.Int("burst", 500, "orchestrations to start at once")
	starters := flag.Int("starters", 50, "concurrent clients issuing the burst's starts")
	trace := flag.Bool("trace", false, "print the storage calls of one orchestration on a timeline")
	chain := flag.Int("chain", 50, "activities called in sequence by one orchestration")
	fan := flag.Int("fan", 200, "activities fanned out to by one orchestration")
	repeat := flag.Int("repeat", 5, "runs of the chain and fan-out orchestrations")
	idle := flag.Duration("idle", 0, "also measure the storage calls of an idle worker over this long (e.g. 60s)")
	listN := flag.Int("list", 10000, "instances to create and list through the management API (0 skips)")
	dataDir := flag.String("azurite-dir", "", "parent directory for the private Azurite's data (default: the system temp dir; /dev/shm keeps it in RAM)")
	flag.Parse()

	ctx := context.Background()
	conn := *storage
	if conn == "" {
		dir, err := os.MkdirTemp(*dataDir, "durable-bench-azurite")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		srv, err := azuritetest.Start(ctx, dir)
		if err != nil {
			return fmt.Errorf("start Azurite: %w", err)
		}
		defer srv.Stop()
		conn = srv.ConnectionString()
	}

	counter := &countingTransport{next: &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 4 * time.Second}}
	hub := fmt.Sprintf("bench%d", time.Now().UnixNano()%1_000_000_000)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: conn, HubName: hub, HTTPClient: &http.Client{Transport: counter}, Logger: log})
	if err != nil {
		return err
	}
	reg := durable.NewRegistry()
	if err := reg.Add(orchestrator.Orchestrator, hello.Activity, sequence, fanOut); err != nil {
		return err
	}
	eng, err := engine.New(engine.Options{Backend: store, Registry: reg, Logger: log})
	if err != nil {
		return err
	}
	if err := eng.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		eng.Stop(stopCtx)
		store.DeleteTaskHub(stopCtx)
	}()
	c := client.New(store, reg, eng)

	fmt.Printf("task hub %s, %d partitions owned, Azurite at %s\n\n", hub, len(eng.OwnedPartitions()), endpointOf(conn))

	// Warm up connections and code paths.
	for i := 0; i < 3; i++ {
		if _, err := runOne(ctx, c); err != nil {
			return err
		}
	}

	if *trace {
		eng.WaitBackground()
		counter.startTrace()
		d, err := runOne(ctx, c)
		if err != nil {
			return err
		}
		fmt.Printf("timeline of one orchestration (%s):\n", d.Round(100*time.Microsecond))
		for _, ev := range counter.stopTrace() {
			fmt.Printf("  %7.2fms +%5.2fms  %s\n", ms(ev.at), ms(ev.took), ev.kind)
		}
		fmt.Println()
	}

	// One at a time.
	counter.reset()
	var lat []time.Duration
	for i := 0; i < *sequential; i++ {
		eng.WaitBackground() // measure each orchestration on its own
		d, err := runOne(ctx, c)
		if err != nil {
			return err
		}
		lat = append(lat, d)
	}
	calls := counter.snapshot()
	fmt.Printf("one orchestration at a time (%d runs)\n", *sequential)
	fmt.Printf("  start-to-completed latency: p50 %s  p95 %s  min %s  max %s\n", pct(lat, 50), pct(lat, 95), pct(lat, 0), pct(lat, 100))
	printCalls(calls, *sequential)

	// Many at once.
	counter.reset()
	lat, wall, err := runBurst(ctx, c, *burst, *starters)
	if err != nil {
		return err
	}
	calls = counter.snapshot()
	fmt.Printf("\n%d orchestrations started at once by %d clients\n", *burst, *starters)
	fmt.Printf("  wall time %s, throughput %.1f orchestrations/s\n", wall.Round(time.Millisecond), float64(*burst)/wall.Seconds())
	fmt.Printf("  start-to-completed latency: p50 %s  p95 %s  max %s\n", pct(lat, 50), pct(lat, 95), pct(lat, 100))
	printCalls(calls, *burst)
	// Long chains and wide fan-outs.
	var perActivity, fanWall []time.Duration
	for i := 0; i < *repeat; i++ {
		eng.WaitBackground()
		d, err := runShape(ctx, c, "Sequence", *chain)
		if err != nil {
			return err
		}
		perActivity = append(perActivity, d/time.Duration(*chain))
		eng.WaitBackground()
		if d, err = runShape(ctx, c, "FanOut", *fan); err != nil {
			return err
		}
		fanWall = append(fanWall, d)
	}
	fmt.Printf("\none orchestration calling %d activities in sequence (%d runs)\n", *chain, *repeat)
	fmt.Printf("  per activity: median %s  min %s  max %s\n", pct(perActivity, 50), pct(perActivity, 0), pct(perActivity, 100))
	fmt.Printf("one orchestration fanning out to %d activities and in again (%d runs)\n", *fan, *repeat)
	fmt.Printf("  wall: median %s  min %s  max %s\n", pct(fanWall, 50), pct(fanWall, 0), pct(fanWall, 100))

	if *idle > 0 {
		eng.WaitBackground()
		counter.reset()
		time.Sleep(*idle) // measuring an idle worker: waiting is the workload
		calls := counter.snapshot()
		var total int64
		for _, n := range calls {
			total += n
		}
		fmt.Printf("\nidle worker: %d storage calls in %s = %.0f per hour\n", total, *idle, float64(total)*float64(time.Hour)/float64(*idle))
		for k, n := range calls {
			fmt.Printf("    %-28s %d\n", k, n)
		}
	}
	if *listN > 0 {
		if err := benchList(ctx, store, c, hub, *listN); err != nil {
			return err
		}
	}

	st := eng.Stats()
	fmt.Printf("\nengine: %d episodes, %d activities, %d dropped, %d deferred, %d checkpoint retries\n",
		st.Episodes, st.ActivitiesRun, st.DroppedMessages, st.DeferredMessages, st.CheckpointRetries)
	return nil
}

// sequence calls Hello n times in a row.
var sequence = durable.NewOrchestrator("Sequence", func(ctx *durable.Context, n int) (int, error) {
	for i := 0; i < n; i++ {
		if _, err := hello.Activity.Call(ctx, "city").Await(); err != nil {
			return 0, err
		}
	}
	return n, nil
})

// fanOut calls Hello n times in parallel and waits for all.
var fanOut = durable.NewOrchestrator("FanOut", func(ctx *durable.Context, n int) (int, error) {
	tasks := make([]durable.Awaitable, n)
	for i := range tasks {
		tasks[i] = hello.Activity.Call(ctx, "city")
	}
	return n, durable.WhenAll(ctx, tasks...)
})

// runShape runs one orchestration with input n and returns its duration.
func runShape(ctx context.Context, c *client.Client, name string, n int) (time.Duration, error) {
	begin := time.Now()
	id, err := c.StartNew(ctx, name, client.StartOptions{Input: n})
	if err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	st, err := c.WaitForCompletion(wctx, id, time.Second)
	if err != nil {
		return 0, err
	}
	if st.Output != fmt.Sprint(n) {
		return 0, fmt.Errorf("%s ended %s with output %s", name, st.Status, st.Output)
	}
	return time.Since(begin), nil
}

// benchList fills the Instances table with n rows (a quarter Running, the
// rest Completed) and lists the Running ones through the management API,
// page by page, as a client would.
func benchList(ctx context.Context, store *azurestorage.Store, c *client.Client, hub string, n int) error {
	root, err := azuritetest.ModuleRoot()
	if err != nil {
		return err
	}
	fill := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	created := time.Now().UTC()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				st := history.StatusCompleted
				if i%4 == 0 {
					st = history.StatusRunning
				}
				row := backend.InstanceState{InstanceID: fmt.Sprintf("list-%06d", i), Name: "Orchestrator", ExecutionID: history.NewID(),
					Status: st, CreatedTime: created, LastUpdatedTime: created, Input: `"x"`}
				if _, err := store.CreateInstance(ctx, row); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	fillTime := time.Since(fill)

	h, err := handler.New(handler.Options{AppRoot: root, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	api := durableapi.New(c, durableapi.Options{BasePath: "/api/durabletask", HubName: hub})
	if err := h.HandleHTTP("DurableTaskAPI", api.Handle); err != nil {
		return err
	}
	srv := httptest.NewServer(h.StandaloneHandler())
	defer srv.Close()

	begin := time.Now()
	var first time.Duration
	token, pages, found := "", 0, 0
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/durabletask/instances?runtimeStatus=Running&top=1000&showInput=false", nil)
		if token != "" {
			req.Header.Set("x-ms-continuation-token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		var page []json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("list page %d: status %d, %v", pages, resp.StatusCode, err)
		}
		if pages == 0 {
			first = time.Since(begin)
		}
		pages++
		found += len(page)
		if token = resp.Header.Get("x-ms-continuation-token"); token == "" {
			break
		}
	}
	total := time.Since(begin)
	fmt.Printf("\nlisting Running instances among %d through the management API (filled in %s)\n", n, fillTime.Round(time.Millisecond))
	fmt.Printf("  %d found in %d pages: first page %s, total %s\n", found, pages, first.Round(time.Millisecond), total.Round(time.Millisecond))
	if found != (n+3)/4 {
		return fmt.Errorf("listed %d Running instances, want %d", found, (n+3)/4)
	}
	return nil
}

// runOne starts one sample orchestration and waits for it.
func runOne(ctx context.Context, c *client.Client) (time.Duration, error) {
	start := time.Now()
	id, err := c.StartNew(ctx, "Orchestrator", client.StartOptions{})
	if err != nil {
		return 0, err
	}
	return waitDone(ctx, c, id, start)
}

func waitDone(ctx context.Context, c *client.Client, id string, start time.Time) (time.Duration, error) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	st, err := c.WaitForCompletion(wctx, id, time.Second)
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("instance %s: %w", id, err)
	}
	if st.Output != `["Hello Tokyo!","Hello Seattle!","Hello London!"]` {
		return 0, fmt.Errorf("instance %s ended %s with output %s", id, st.Status, st.Output)
	}
	return d, nil
}

func runBurst(ctx context.Context, c *client.Client, n, starters int) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	errs := make(chan error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for s := 0; s < starters; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine sync.WaitGroup
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					break
				}
				t := time.Now()
				id, err := c.StartNew(ctx, "Orchestrator", client.StartOptions{})
				if err != nil {
					errs <- err
					continue
				}
				mine.Add(1)
				go func() {
					defer mine.Done()
					d, err := waitDone(ctx, c, id, t)
					if err != nil {
						errs <- err
					}
					lat[i] = d
				}()
			}
			mine.Wait()
		}()
	}
	wg.Wait()
	wall := time.Since(begin)
	close(errs)
	for err := range errs {
		return nil, 0, err
	}
	return lat, wall, nil
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	i := (len(s) - 1) * p / 100
	return s[i].Round(100 * time.Microsecond)
}

func printCalls(calls map[string]int64, n int) {
	var total, polls int64
	var keys []string
	for k, v := range calls {
		keys = append(keys, k)
		total += v
		if strings.HasPrefix(k, "queue receive") {
			polls += v
		}
	}
	sort.Strings(keys)
	fmt.Printf("  storage calls per orchestration: %.2f (excluding queue polls), %.2f with the %d polls made meanwhile\n",
		float64(total-polls)/float64(n), float64(total)/float64(n), polls)
	for _, k := range keys {
		fmt.Printf("    %-28s %7.2f per orchestration (%d)\n", k, float64(calls[k])/float64(n), calls[k])
	}
}

func endpointOf(conn string) string {
	for _, part := range strings.Split(conn, ";") {
		if strings.HasPrefix(part, "QueueEndpoint=") {
			return strings.TrimPrefix(part, "QueueEndpoint=")
		}
	}
	return "?"
}

// countingTransport counts storage requests by kind, and can record a
// timeline of them.
type countingTransport struct {
	next    http.RoundTripper
	mu      sync.Mutex
	m       map[string]int64
	tracing bool
	t0      time.Time
	events  []traceEvent
}

type traceEvent struct {
	at, took time.Duration
	kind     string
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	k := classify(r)
	start := time.Now()
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[k]++
	c.mu.Unlock()
	resp, err := c.next.RoundTrip(r)
	c.mu.Lock()
	if c.tracing {
		c.events = append(c.events, traceEvent{at: start.Sub(c.t0), took: time.Since(start), kind: k})
	}
	c.mu.Unlock()
	return resp, err
}

func (c *countingTransport) startTrace() {
	c.mu.Lock()
	c.tracing, c.t0, c.events = true, time.Now(), nil
	c.mu.Unlock()
}

func (c *countingTransport) stopTrace() []traceEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tracing = false
	sort.Slice(c.events, func(i, j int) bool { return c.events[i].at < c.events[j].at })
	return c.events
}

func (c *countingTransport) reset() {
	c.mu.Lock()
	c.m = map[string]int64{}
	c.mu.Unlock()
}

func (c *countingTransport) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// classify names a storage request: queue or table, and the operation.
func classify(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/messages"):
		switch r.Method {
		case http.MethodGet:
			return "queue receive"
		case http.MethodPost:
			return "queue send"
		}
	case strings.Contains(p, "/messages/"):
		switch r.Method {
		case http.MethodDelete:
			return "queue delete"
		case http.MethodPut:
			return "queue update visibility"
		}
	case strings.HasSuffix(p, "$batch"):
		return "table batch (history)"
	case strings.Contains(p, "Partitions"):
		return "table partitions " + strings.ToLower(r.Method)
	case strings.Contains(p, "Instances"):
		return "table instances " + strings.ToLower(r.Method)
	case strings.Contains(p, "History"):
		return "table history " + strings.ToLower(r.Method)
	}
	return "other " + r.Method + " " + p
}
