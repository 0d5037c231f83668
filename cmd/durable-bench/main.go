// Command durable-bench measures the task hub on Azure Storage (Azurite)
// and prints, for one run:
//
//   - W1, the sample (activity Hello x3 in sequence), one instance at a
//     time: p50/p95 start-to-completed in process (client StartNew to the
//     completion notification) and as a user sees it (POST the start
//     route, then GET statusQueryGetUri every 2 ms until it answers 200);
//   - the storage calls one sample orchestration costs, by kind;
//   - W2, 500 sample instances started at once through the HTTP start
//     route by 32 clients: throughput from the Instances table,
//     500 / (last CompletedTime - first CreatedTime), and wall-clock;
//   - W3, one orchestration fanning out to 200 activities, and W4, one
//     calling 50 activities in sequence (medians of a few runs);
//   - E1..E4, durable entities: signals per second into one Counter and
//     into 100, through the HTTP entity route and from orchestrations,
//     and the CallEntity round trip (entities.go);
//   - one orchestration of 5,000 sequential activities: time per activity
//     over the first and the last 500, from times the activities record;
//   - a final one-line JSON summary of all figures.
//
// -otel on runs it all with OpenTelemetry traces and metrics exported to an
// in-process OTLP receiver and prints what the receiver got; -otel both
// runs W1..W4 and E1..E4 with it off and on alternately and prints the
// medians and on/off ratios (otel.go).
//
// Every output is checked; a wrong result or a timeout ends the run with
// an error and a non-zero exit. Figures are printed, never judged.
//
//	go run ./cmd/durable-bench                 # starts a private Azurite (needs `npm ci`)
//	go run ./cmd/durable-bench -storage "..."  # uses a running storage account
//
// The bench serves its own copy of the sample (functions.go) through the
// library's handler stack on a local listener, as the app serves it
// standalone; it does not import the sample's packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/handler/dashboard"
	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/handler/funcapp"
	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/otlptest"
	"github.com/go-durable/durablefunctions/internal/telemetry"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "durable-bench:", err)
		os.Exit(1)
	}
}

// config holds the flags.
type config struct {
	storage, azuriteDir             string
	warmup, sequential              int
	burst, starters                 int
	chain, fan, repeat              int
	long, longWindow                int
	trace                           bool
	idle                            time.Duration
	list                            int
	sampleTimeout, burstTimeout     time.Duration
	shapeTimeout, longTimeout       time.Duration
	partitionWait, engineStartLimit time.Duration
	// The entity workloads.
	entitySignals, entityClients, entityKeys int
	entityOrchs, entityOrchSignals           int
	entityCalls, entityRepeat                int
	entityTimeout                            time.Duration
	// OpenTelemetry (otel.go): off, on or both, and the rounds of both.
	otel       string
	otelRounds int
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("durable-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.storage, "storage", "", "storage connection string (default: start a private Azurite from node_modules)")
	fs.StringVar(&c.azuriteDir, "azurite-dir", "", "parent directory for the private Azurite's data (default: the system temp dir; /dev/shm keeps it in RAM)")
	fs.IntVar(&c.warmup, "warmup", 3, "W1: warm-up runs (in process and over HTTP each) before measuring")
	fs.IntVar(&c.sequential, "sequential", 30, "W1: sample instances run one at a time, in process and over HTTP each; the in-process ones also give the storage calls")
	fs.IntVar(&c.burst, "burst", 500, "W2: sample instances started at once through the HTTP start route (0 skips)")
	fs.IntVar(&c.starters, "starters", 32, "W2: concurrent HTTP clients issuing the starts")
	fs.IntVar(&c.fan, "fan", 200, "W3: activities one orchestration fans out to")
	fs.IntVar(&c.chain, "chain", 50, "W4: activities one orchestration calls in sequence")
	fs.IntVar(&c.repeat, "repeat", 5, "W3 and W4: runs each; the median is reported (0 skips)")
	fs.IntVar(&c.long, "long", 5000, "activities of the long sequential orchestration (0 skips)")
	fs.IntVar(&c.longWindow, "long-window", 500, "activities at the start and at the end of the long sequence whose time per activity is reported")
	fs.BoolVar(&c.trace, "trace", false, "also print the storage calls of one sample orchestration on a timeline")
	fs.DurationVar(&c.idle, "idle", 0, "also count the storage calls of the idle engine over this long (e.g. 60s)")
	fs.IntVar(&c.list, "list", 0, "also create this many instance rows and list the Running ones through the management API")
	fs.DurationVar(&c.sampleTimeout, "sample-timeout", time.Minute, "W1: limit for one sample instance")
	fs.DurationVar(&c.burstTimeout, "burst-timeout", 10*time.Minute, "W2: limit for the whole burst")
	fs.DurationVar(&c.shapeTimeout, "shape-timeout", 5*time.Minute, "W3 and W4: limit for one orchestration")
	fs.DurationVar(&c.longTimeout, "long-timeout", 20*time.Minute, "limit for the long sequential orchestration")
	fs.IntVar(&c.entitySignals, "entity-signals", 1000, "E1 and E2: \"add\" signals sent through the HTTP entity route per run (0 skips)")
	fs.IntVar(&c.entityClients, "entity-clients", 32, "E1 and E2: concurrent HTTP clients sending the signals")
	fs.IntVar(&c.entityKeys, "entity-keys", 100, "E2 and E3: entities the signals are spread over, round-robin")
	fs.IntVar(&c.entityOrchs, "entity-orchs", 25, "E3: orchestrations sending signals per run (0 skips)")
	fs.IntVar(&c.entityOrchSignals, "entity-orch-signals", 40, "E3: signals each orchestration sends")
	fs.IntVar(&c.entityCalls, "entity-calls", 200, "E4: sequential CallEntity \"get\" of one orchestration (0 skips)")
	fs.IntVar(&c.entityRepeat, "entity-repeat", 3, "E1..E4: runs each; the median is reported (0 skips every entity workload)")
	fs.DurationVar(&c.entityTimeout, "entity-timeout", 5*time.Minute, "E1..E4: limit for one run")
	fs.StringVar(&c.otel, "otel", otelOff, "OpenTelemetry: off (as the app runs with no OTEL_* set), on (traces and metrics exported over OTLP/HTTP to an in-process receiver), "+
		"or both (W1..W4 and E1..E4 only, off and on alternately for -otel-rounds rounds, each on a fresh task hub; prints medians and on/off ratios)")
	fs.IntVar(&c.otelRounds, "otel-rounds", 5, "-otel both: rounds of one off and one on run")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q: every setting is a flag (see -help)", fs.Args())
	}
	c.partitionWait, c.engineStartLimit = time.Minute, 2*time.Minute
	var errs []error
	positive := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("-%s=%d: want a positive number", name, v))
		}
	}
	notNegative := func(name string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("-%s=%d: want 0 or more", name, v))
		}
	}
	positive("sequential", c.sequential)
	positive("starters", c.starters)
	positive("fan", c.fan)
	positive("chain", c.chain)
	notNegative("warmup", c.warmup)
	notNegative("burst", c.burst)
	notNegative("repeat", c.repeat)
	notNegative("long", c.long)
	notNegative("list", c.list)
	notNegative("entity-signals", c.entitySignals)
	notNegative("entity-orchs", c.entityOrchs)
	notNegative("entity-calls", c.entityCalls)
	notNegative("entity-repeat", c.entityRepeat)
	positive("entity-clients", c.entityClients)
	positive("entity-keys", c.entityKeys)
	positive("entity-orch-signals", c.entityOrchSignals)
	if c.entityRepeat > 0 && c.entitySignals > 0 && c.entitySignals < c.entityKeys {
		errs = append(errs, fmt.Errorf("-entity-signals=%d with -entity-keys=%d: want at least one signal per entity", c.entitySignals, c.entityKeys))
	}
	if n := c.entityOrchs * c.entityOrchSignals; c.entityRepeat > 0 && c.entityOrchs > 0 && c.entityOrchSignals > 0 && n < c.entityKeys {
		errs = append(errs, fmt.Errorf("-entity-orchs=%d x -entity-orch-signals=%d = %d signals with -entity-keys=%d: want at least one signal per entity", c.entityOrchs, c.entityOrchSignals, n, c.entityKeys))
	}
	if c.long > 0 && (c.longWindow <= 0 || c.long < 2*c.longWindow) {
		errs = append(errs, fmt.Errorf("-long-window=%d with -long=%d: want a window of at least 1 and at most half the sequence", c.longWindow, c.long))
	}
	for name, d := range map[string]time.Duration{"sample-timeout": c.sampleTimeout, "burst-timeout": c.burstTimeout, "shape-timeout": c.shapeTimeout, "long-timeout": c.longTimeout, "entity-timeout": c.entityTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("-%s=%v: want a positive duration", name, d))
		}
	}
	if c.idle < 0 {
		errs = append(errs, fmt.Errorf("-idle=%v: want 0 (off) or a positive duration", c.idle))
	}
	errs = append(errs, checkOtelFlags(&c, set)...)
	return c, errors.Join(errs...)
}

// bench is one assembled app under measurement.
type bench struct {
	cfg     config
	hub     string
	store   *azurestorage.Store // the app's store; its calls are counted
	counter *countingTransport
	eng     *engine.Engine
	app     *client.Client // the app's client, over store
	// watch waits for and reads back instances over a second store whose
	// calls are not counted: they are the bench's, not the app's.
	watch    *client.Client
	plain    backend.Backend // the uncounted store behind watch
	baseURL  string          // the app's local listener
	startURL string          // the start route of the sample orchestrator
	apiURL   string          // the management API's base
	web      *http.Client
	out      io.Writer // the report (stdout; discarded for the runs of -otel both)
	progress io.Writer
	sum      summary
}

func run(args []string) error {
	cfg, err := parseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := azuritetest.ModuleRoot()
	if err != nil {
		return fmt.Errorf("%w: run the bench from the repository (go run ./cmd/durable-bench): it serves the app root's function.json files", err)
	}
	conn, where := cfg.storage, "the given storage account"
	if conn == "" {
		dir, err := os.MkdirTemp(cfg.azuriteDir, "durable-bench-azurite")
		if err != nil {
			return fmt.Errorf("create Azurite's data directory: %w", err)
		}
		defer os.RemoveAll(dir)
		srv, err := azuritetest.Start(ctx, dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("Azurite is not installed (%s is missing): run `npm ci` in %s, or pass -storage with a connection string",
				filepath.Join(root, "node_modules", "azurite"), root)
		case errors.Is(err, exec.ErrNotFound):
			return fmt.Errorf("Node.js is not on PATH (the private Azurite needs Node.js 20): install it, or pass -storage with a connection string")
		case err != nil:
			return fmt.Errorf("cannot start a private Azurite: %w (or pass -storage with a connection string)", err)
		}
		defer srv.Stop()
		conn, where = srv.ConnectionString(), fmt.Sprintf("a private Azurite (queues on 127.0.0.1:%d)", srv.QueuePort)
	}

	if cfg.otel == otelBoth {
		return runBoth(ctx, cfg, conn, where, root)
	}
	var tel telemetry.Providers // none: the engine's default, the global no-op providers
	var recv *otlptest.Receiver
	if cfg.otel == otelOn {
		if recv, tel, err = startTelemetry(ctx); err != nil {
			return err
		}
		defer recv.Close()
	}
	b, closeApp, err := assemble(ctx, cfg, conn, root, tel)
	if err != nil {
		shutdownTelemetry(tel)
		return err
	}
	fmt.Fprintf(b.out, "durable-bench: task hub %s on %s, %d of %d partitions owned, app at %s%s\n\n",
		b.hub, where, len(b.eng.OwnedPartitions()), b.store.PartitionCount(), b.baseURL, otelBanner(cfg.otel))
	err = b.runAll(ctx)
	closeApp() // every span has ended once the engine stopped
	if err != nil {
		shutdownTelemetry(tel)
		return err
	}
	if cfg.otel == otelOn {
		if err := b.checkTelemetry(tel, recv, 0, 0); err != nil {
			return err
		}
	}
	fmt.Fprintln(b.out)
	fmt.Fprintln(b.out, b.sum.json())
	return nil
}

// assemble builds the app the way funcapp.New does (handler, store,
// engine, client, management API), except that the store's HTTP client
// counts calls, starts the engine, and serves the handler's standalone
// routes on a loopback listener. close undoes it all.
// bindHTTP binds the app root's HTTP functions: the management API, the
// sample's HttpStart and, when the app root declares them, the dashboard and
// the wake function (as funcapp does), so that none is left without Go code.
func bindHTTP(h *handler.App, eng *engine.Engine, app *client.Client, api *durableapi.API) error {
	if err := h.HandleHTTP("DurableTaskAPI", api.Handle); err != nil {
		return err
	}
	if err := h.HandleHTTP("HttpStart", httpStart(app, api)); err != nil {
		return err
	}
	if _, ok := h.Config().Function(dashboard.Function); ok {
		if err := h.HandleHTTP(dashboard.Function, dashboard.Serve); err != nil {
			return err
		}
	}
	// The wake function polls the engine now; the bench sends no wakes
	// (it runs without the Functions host).
	if _, ok := h.Config().Function(funcapp.WakeFunction); ok {
		if err := h.HandleInvocation(funcapp.WakeFunction, funcapp.WakeFunc(eng)); err != nil {
			return err
		}
	}
	return nil
}

// tel's providers, when set, are passed to the app's engine, store and
// client; unset, they keep their defaults (the global providers, no-op
// unless something installed the SDK), as in an app with no OTEL_* set.
func assemble(ctx context.Context, cfg config, conn, root string, tel telemetry.Providers) (b *bench, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		closers = nil
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := durable.NewRegistry()
	if err := reg.Add(definitions...); err != nil {
		return nil, nil, err
	}
	hub := fmt.Sprintf("bench%d", time.Now().UnixNano()%1_000_000_000)
	counter := &countingTransport{
		next:     &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 4 * time.Second},
		classify: newClassifier(hub).classify,
	}
	storeOpts := azurestorage.Options{ConnectionString: conn, HubName: hub, HTTPClient: &http.Client{Transport: counter}, Logger: log}
	engOpts := engine.Options{Registry: reg, Logger: log}
	// Set only what is on: a nil *SDK provider in an interface is not nil.
	if tel.Meter != nil {
		storeOpts.MeterProvider, engOpts.MeterProvider = tel.Meter, tel.Meter
	}
	if tel.Tracer != nil {
		engOpts.TracerProvider = tel.Tracer
	}
	store, err := azurestorage.New(storeOpts)
	if err != nil {
		return nil, nil, err
	}
	plain, err := azurestorage.New(azurestorage.Options{ConnectionString: conn, HubName: hub, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	engOpts.Backend = store
	eng, err := engine.New(engOpts)
	if err != nil {
		return nil, nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, cfg.engineStartLimit)
	defer cancel()
	if err := eng.Start(startCtx); err != nil {
		return nil, nil, fmt.Errorf("start the engine: %w", err)
	}
	closers = append(closers, func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := eng.Stop(stopCtx); err != nil {
			fmt.Fprintln(os.Stderr, "durable-bench: stop the engine:", err)
		}
		// A private Azurite goes away with its data; the hubs of -otel both
		// are dropped one by one so that every run starts on empty tables.
		if cfg.storage != "" || cfg.otel == otelBoth {
			if err := store.DeleteTaskHub(stopCtx); err != nil {
				fmt.Fprintln(os.Stderr, "durable-bench: delete task hub", hub+":", err)
			}
		}
	})
	// The first ownership pass may leave partitions to later passes; a
	// start routed to one not yet owned would wait for a poll.
	deadline := time.Now().Add(cfg.partitionWait)
	for len(eng.OwnedPartitions()) < store.PartitionCount() {
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("the engine owns %d of %d partitions after %v", len(eng.OwnedPartitions()), store.PartitionCount(), cfg.partitionWait)
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return nil, nil, ctx.Err()
		}
	}

	app := client.New(store, reg, eng)
	if tel.Tracer != nil {
		app.SetTracerProvider(tel.Tracer)
	}
	h, err := handler.New(handler.Options{AppRoot: root, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	base := "/durabletask"
	if p := h.Config().RoutePrefix; p != "" {
		base = "/" + p + base
	}
	api := durableapi.New(app, durableapi.Options{BasePath: base, HubName: hub, Logger: log})
	if err := bindHTTP(h, eng, app, api); err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("listen for the app: %w", err)
	}
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- h.Serve(serveCtx, ln, h.StandaloneHandler()) }()
	closers = append(closers, func() {
		stopServing()
		if err := <-served; err != nil {
			fmt.Fprintln(os.Stderr, "durable-bench: the app server:", err)
		}
	})
	baseURL := "http://" + ln.Addr().String()
	startPath := "/orchestrators/" + sampleOrchestrator.Name()
	if p := h.Config().RoutePrefix; p != "" {
		startPath = "/" + p + startPath
	}
	web := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 30 * time.Second}, Timeout: 30 * time.Second}
	closers = append(closers, web.CloseIdleConnections)
	return &bench{
		cfg: cfg, hub: hub, store: store, counter: counter, eng: eng, app: app,
		watch:   client.New(plain, reg, eng),
		plain:   plain,
		baseURL: baseURL, startURL: baseURL + startPath, apiURL: baseURL + base, web: web, out: os.Stdout, progress: os.Stderr,
	}, closeAll, nil
}

// runAll runs every workload in order; the caller prints the summary.
func (b *bench) runAll(ctx context.Context) error {
	c := b.cfg
	b.note("W1: %d warm-up and %d measured sample runs, in process and over HTTP", c.warmup, c.sequential)
	if err := b.w1(ctx); err != nil {
		return fmt.Errorf("W1 (the sample, one at a time): %w", err)
	}
	if c.burst > 0 {
		b.note("W2: %d sample instances at once through HTTP, %d clients", c.burst, c.starters)
		if err := b.w2(ctx); err != nil {
			return fmt.Errorf("W2 (%d at once): %w", c.burst, err)
		}
	}
	if c.repeat > 0 {
		b.note("W3 and W4: fan-out to %d, sequence of %d, %d runs each", c.fan, c.chain, c.repeat)
		if err := b.w3w4(ctx); err != nil {
			return fmt.Errorf("W3/W4: %w", err)
		}
	}
	if c.entityRepeat > 0 && (c.entitySignals > 0 || c.entityOrchs > 0 || c.entityCalls > 0) {
		if err := b.entities(ctx); err != nil {
			return fmt.Errorf("entities: %w", err)
		}
	}
	if c.long > 0 {
		b.note("long sequence of %d activities (this takes a while)", c.long)
		if err := b.long(ctx); err != nil {
			return fmt.Errorf("long sequence: %w", err)
		}
	}
	if c.idle > 0 {
		b.note("idle engine for %v", c.idle)
		if err := b.idle(ctx); err != nil {
			return err
		}
	}
	if c.list > 0 {
		b.note("listing among %d instance rows", c.list)
		if err := b.benchList(ctx, c.list); err != nil {
			return fmt.Errorf("list: %w", err)
		}
	}
	return nil
}

// note prints a progress line on stderr.
func (b *bench) note(format string, args ...any) {
	fmt.Fprintf(b.progress, "durable-bench: "+format+"\n", args...)
}

// w1 runs the sample one instance at a time, in process (also counting
// storage calls) and over HTTP.
func (b *bench) w1(ctx context.Context) error {
	c := b.cfg
	for i := 0; i < c.warmup; i++ {
		if _, err := b.sampleInProcess(ctx); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if _, _, err := b.sampleViaHTTP(ctx); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	if c.trace {
		b.eng.WaitBackground()
		b.counter.startTrace()
		d, err := b.sampleInProcess(ctx)
		if err != nil {
			return err
		}
		b.eng.WaitBackground()
		fmt.Fprintf(b.out, "Timeline of the storage calls of one sample orchestration (completed after %s; deferred calls included):\n", fmtMS(d))
		for _, ev := range b.counter.stopTrace() {
			fmt.Fprintf(b.out, "  %8.2f ms  +%6.2f ms  %s\n", ms(ev.at), ms(ev.took), ev.kind)
		}
		fmt.Fprintln(b.out)
	}

	// In process, counting storage calls over the whole batch.
	b.eng.WaitBackground()
	b.counter.reset()
	began := time.Now()
	inproc := make([]time.Duration, 0, c.sequential)
	for i := 0; i < c.sequential; i++ {
		b.eng.WaitBackground() // each instance on its own
		d, err := b.sampleInProcess(ctx)
		if err != nil {
			return err
		}
		inproc = append(inproc, d)
	}
	b.eng.WaitBackground()
	batchTime := time.Since(began)
	batch := b.counter.snapshot()
	// The idle background over as long a time, for comparison.
	b.counter.reset()
	if !sleepCtx(ctx, batchTime) {
		return ctx.Err()
	}
	calls := breakdown(batch, b.counter.snapshot(), c.sequential)

	// As a user sees it.
	user := make([]time.Duration, 0, c.sequential)
	gets := make([]time.Duration, 0, c.sequential) // GET counts, as durations for pct
	for i := 0; i < c.sequential; i++ {
		b.eng.WaitBackground()
		d, n, err := b.sampleViaHTTP(ctx)
		if err != nil {
			return err
		}
		user = append(user, d)
		gets = append(gets, time.Duration(n))
	}

	fmt.Fprintf(b.out, "W1  the sample (Hello x3 in sequence), one instance at a time, %d runs after %d warm-ups\n", c.sequential, c.warmup)
	fmt.Fprintf(b.out, "    in process (client StartNew -> completion notification):   p50 %s  p95 %s  (min %s, max %s)\n",
		fmtMS(pct(inproc, 50)), fmtMS(pct(inproc, 95)), fmtMS(pct(inproc, 0)), fmtMS(pct(inproc, 100)))
	fmt.Fprintf(b.out, "    as a user sees it (POST %s, then GET statusQueryGetUri every 2 ms until 200):\n", strings.TrimPrefix(b.startURL, b.baseURL))
	fmt.Fprintf(b.out, "                                                               p50 %s  p95 %s  (min %s, max %s; median %d GETs)\n",
		fmtMS(pct(user, 50)), fmtMS(pct(user, 95)), fmtMS(pct(user, 0)), fmtMS(pct(user, 100)), int64(pct(gets, 50)))
	b.sum.add("w1_runs", c.sequential)
	b.sum.add("w1_p50_ms_inproc", msR(pct(inproc, 50)))
	b.sum.add("w1_p95_ms_inproc", msR(pct(inproc, 95)))
	b.sum.add("w1_p50_ms_user", msR(pct(user, 50)))
	b.sum.add("w1_p95_ms_user", msR(pct(user, 95)))

	fmt.Fprintf(b.out, "\nStorage calls per sample orchestration: %.2f\n", calls.perRun())
	fmt.Fprintf(b.out, "    counted at the app's storage client over the %d in-process W1 runs (%s; start, completion, deferred\n", c.sequential, batchTime.Round(time.Millisecond))
	fmt.Fprintf(b.out, "    deletes and status writes), divided by %d. Polls (queue receive) and ownership passes (partition\n", c.sequential)
	fmt.Fprintf(b.out, "    table, app lease) are the idle background and kept out; any other call seen in an idle window of\n")
	fmt.Fprintf(b.out, "    the same length right after is subtracted. The bench's own waits and reads are not counted.\n")
	for _, k := range sortedKeys(calls.work) {
		fmt.Fprintf(b.out, "      %-32s %6.2f  (%d in the batch, %d idle)\n", k, calls.work[k], calls.batch[k], calls.idle[k])
	}
	fmt.Fprintf(b.out, "    idle background, kept out (in the batch / in the idle window):\n")
	bg := map[string]bool{}
	for k := range calls.batchBG {
		bg[k] = true
	}
	for k := range calls.idleBG {
		bg[k] = true
	}
	if len(bg) == 0 {
		fmt.Fprintf(b.out, "      none\n")
	}
	for _, k := range sortedKeys(bg) {
		fmt.Fprintf(b.out, "      %-32s %d / %d\n", k, calls.batchBG[k], calls.idleBG[k])
	}
	byKind := map[string]float64{}
	for k, v := range calls.work {
		byKind[k] = round2(v)
	}
	b.sum.add("calls_per_sample", round2(calls.perRun()))
	b.sum.add("calls_per_sample_by_kind", byKind)
	return nil
}

// w2 runs the burst.
func (b *bench) w2(ctx context.Context) error {
	b.eng.WaitBackground()
	n, clients := b.cfg.burst, b.cfg.starters
	r, err := b.burst(ctx, n, clients)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\nW2  %d sample instances started at once through POST %s by %d clients\n", n, strings.TrimPrefix(b.startURL, b.baseURL), clients)
	fmt.Fprintf(b.out, "    throughput from the Instances table, %d / (last CompletedTime - first CreatedTime = %s): %.1f orchestrations/s\n",
		n, r.tableSpan.Round(time.Millisecond), r.tableRate)
	fmt.Fprintf(b.out, "    wall-clock, first POST to the last completion notification: %s = %.1f orchestrations/s\n",
		r.wall.Round(time.Millisecond), float64(n)/r.wall.Seconds())
	fmt.Fprintf(b.out, "    per instance, POST to completion notification: p50 %s  p95 %s  max %s\n",
		fmtMS(pct(r.lat, 50)), fmtMS(pct(r.lat, 95)), fmtMS(pct(r.lat, 100)))
	b.sum.add("w2_n", n)
	b.sum.add("w2_clients", clients)
	b.sum.add("w2_orch_per_s", round2(r.tableRate))
	b.sum.add("w2_wall_s", round3(r.wall.Seconds()))
	b.sum.add("w2_wall_orch_per_s", round2(float64(n)/r.wall.Seconds()))
	b.sum.add("w2_p50_ms", msR(pct(r.lat, 50)))
	b.sum.add("w2_p95_ms", msR(pct(r.lat, 95)))
	return nil
}

// w3w4 runs the fan-out and the short sequence, alternating.
func (b *bench) w3w4(ctx context.Context) error {
	c := b.cfg
	var fan, seq []time.Duration
	for i := 0; i < c.repeat; i++ {
		b.eng.WaitBackground()
		d, err := b.runShape(ctx, fanOutOrchestrator.Name(), c.fan, c.fan*(c.fan+1)/2, c.shapeTimeout)
		if err != nil {
			return err
		}
		fan = append(fan, d)
		b.eng.WaitBackground()
		if d, err = b.runShape(ctx, sequenceOrchestrator.Name(), c.chain, c.chain, c.shapeTimeout); err != nil {
			return err
		}
		seq = append(seq, d)
	}
	fmt.Fprintf(b.out, "\nW3  one orchestration fanning out to %d activities (Echo 1..%d) and summing them, %d runs, in process\n", c.fan, c.fan, c.repeat)
	fmt.Fprintf(b.out, "    start to completed: median %s  (min %s, max %s)\n", fmtMS(pct(fan, 50)), fmtMS(pct(fan, 0)), fmtMS(pct(fan, 100)))
	fmt.Fprintf(b.out, "W4  one orchestration calling %d activities (Inc) in sequence, %d runs, in process\n", c.chain, c.repeat)
	fmt.Fprintf(b.out, "    start to completed: median %s = %s per activity  (min %s, max %s)\n",
		fmtMS(pct(seq, 50)), fmtMS(pct(seq, 50)/time.Duration(c.chain)), fmtMS(pct(seq, 0)), fmtMS(pct(seq, 100)))
	b.sum.add(fmt.Sprintf("w3_fan%d_ms", c.fan), msR(pct(fan, 50)))
	b.sum.add(fmt.Sprintf("w4_seq%d_ms", c.chain), msR(pct(seq, 50)))
	b.sum.add(fmt.Sprintf("w4_seq%d_ms_per_act", c.chain), round3(ms(pct(seq, 50))/float64(c.chain)))
	return nil
}

// long runs the long sequence.
func (b *bench) long(ctx context.Context) error {
	n, w := b.cfg.long, b.cfg.longWindow
	b.eng.WaitBackground()
	first, last, total, err := b.longSequence(ctx, n, w)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\nOne orchestration of %d sequential activities (Inc), in process: %s in all, %s per activity\n",
		n, total.Round(time.Millisecond), fmtMS(total/time.Duration(n)))
	fmt.Fprintf(b.out, "    time per activity, from the times the activities recorded (start of activity i to start of i+%d, / %d):\n", w, w)
	fmt.Fprintf(b.out, "      first %d: %s    last %d: %s    (last / first = %.2f)\n", w, fmtMS(first), w, fmtMS(last), float64(last)/float64(first))
	p := fmt.Sprintf("seq%d_", n)
	b.sum.add(p+fmt.Sprintf("first%d_ms_per_act", w), round3(ms(first)))
	b.sum.add(p+fmt.Sprintf("last%d_ms_per_act", w), round3(ms(last)))
	b.sum.add(p+"total_s", round3(total.Seconds()))
	return nil
}

// idle counts the storage calls of the idle engine.
func (b *bench) idle(ctx context.Context) error {
	d := b.cfg.idle
	b.eng.WaitBackground()
	b.counter.reset()
	if !sleepCtx(ctx, d) { // measuring an idle engine: waiting is the workload
		return ctx.Err()
	}
	calls := b.counter.snapshot()
	var total int64
	for _, n := range calls {
		total += n
	}
	perHour := float64(total) * float64(time.Hour) / float64(d)
	fmt.Fprintf(b.out, "\nIdle engine: %d storage calls in %s = %.0f per hour\n", total, d, perHour)
	for _, k := range sortedKeys(calls) {
		fmt.Fprintf(b.out, "      %-32s %d\n", k, calls[k])
	}
	b.sum.add("idle_calls_per_hour", round2(perHour))
	return nil
}
