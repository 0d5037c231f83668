// Package funcapp assembles a durable function app: the custom handler,
// the Azure Storage task hub, its engine, the client and the management
// API. main.go of an app registers its functions and calls Main.
package funcapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/handler/dashboard"
	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/internal/telemetry"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durablehttp"
	"github.com/go-durable/durablefunctions/taskhub/engine"
	"github.com/go-durable/durablefunctions/taskhub/wake"
)

// ManagementFunction is the function folder whose catch-all route serves
// the management API.
const ManagementFunction = "DurableTaskAPI"

// startWait is how long a client call made while the engine starts waits
// for its first start attempt before answering "unavailable".
const startWait = 2 * time.Second

// App is an assembled function app.
type App struct {
	Config   Config
	Log      *slog.Logger
	Handler  *handler.App
	Registry *durable.Registry
	Store    *azurestorage.Store
	Engine   *engine.Engine
	Client   *client.Client
	API      *durableapi.API
	// Wakes sends the task hub's wake messages; nil unless the app has the
	// wake function (WakeFunction) and runs under the Functions host.
	Wakes *wake.Backend
	// Watchdog keeps a wake in the queue while the engine is busy, for the
	// work it holds should this process be killed (see wake.Watchdog);
	// nil when Wakes is.
	Watchdog *wake.Watchdog
}

// watchdogDelay is how long the watchdog's wake stays hidden after a push:
// until a killed worker's messages (hidden for at most visibility after
// its death) and partitions (leased for at most lease) are free, counted
// from a push up to refresh plus one check (pushes happen on the
// watchdog's 1 s checks) before the death, plus a second for whole-second
// visibilities and clock skew. With the defaults, 60 s + 30 s + 1 s.
func watchdogDelay(visibility, lease, refresh time.Duration) time.Duration {
	return visibility + max(lease, refresh+wake.DefaultWatchdogCheck) + time.Second
}

// watchdogRefresh is how often the watchdog pushes its wake while the
// engine is busy: a third of the message visibility, between 1 s and 30 s.
func watchdogRefresh(visibility time.Duration) time.Duration {
	return min(max(visibility/3, time.Second), 30*time.Second)
}

// New assembles an app from cfg with the given orchestrators and
// activities. It binds the management API to ManagementFunction when the
// app declares that function, the dashboard to dashboard.Function (with
// "/" redirecting to it in standalone mode) when it declares that, and the
// wake function to WakeFunction when it declares that. Under the Functions
// host the wake function must listen on the hub's wake queue (else an
// error wrapping ErrWakeFunction), and the task hub then sends wake
// messages; standalone, nothing would invoke it, so it is neither checked
// nor fed.
func New(cfg Config, log *slog.Logger, defs ...durable.Definition) (*App, error) {
	reg := durable.NewRegistry()
	if err := reg.Add(defs...); err != nil {
		return nil, err
	}
	// durable.CallHTTP needs the built-in HTTP activity; an app may bring
	// its own under that name (a stand-in in tests, say).
	if !slices.ContainsFunc(defs, func(d durable.Definition) bool { return d.Name() == durable.HTTPActivityName }) {
		if err := reg.Add(durablehttp.Activity()); err != nil {
			return nil, err
		}
	}
	reg.SetHTTPPollInterval(cfg.HTTPPollInterval)
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = defaultStopGrace
	}
	h, err := handler.New(handler.Options{AppRoot: cfg.AppRoot, Logger: log, FunctionKey: cfg.FunctionKey, ShutdownTimeout: cfg.StopGrace})
	if err != nil {
		return nil, err
	}
	storeOpts := azurestorage.Options{
		ConnectionString: cfg.Storage, HubName: cfg.HubName, PartitionCount: cfg.PartitionCount, Logger: log,
		AppName: cfg.AppName,
	}
	if id := cfg.StorageIdentity; id != nil {
		if storeOpts.Credential, err = id.Credential(); err != nil {
			return nil, err
		}
		storeOpts.Endpoints = id.Endpoints
	}
	store, err := azurestorage.New(storeOpts)
	if err != nil {
		return nil, err
	}
	// Scale from zero: with the wake function, control messages that no
	// running worker may see are accompanied by wake messages. Without the
	// Functions host nobody would receive them: none are sent.
	wakeFn, wakeOn, err := wakeFunction(h.Config(), cfg.HubName, cfg.lookupSetting, cfg.Hosted)
	if err != nil {
		return nil, err
	}
	var hub backend.Backend = store
	var wakes *wake.Backend
	var eng *engine.Engine
	if wakeOn && cfg.Hosted {
		wakes = wake.New(store, wake.Options{Logger: log,
			Owned:     func(p int) bool { return eng.OwnsPartition(p) },
			PollOwned: func(p int) { eng.PollPartition(p) }})
		hub = wakes
		log.Info("scale from zero: sending wake messages", "function", wakeFn.Name, "queue", wake.QueueName(cfg.HubName))
	}
	eng, err = engine.New(engine.Options{
		Backend: hub, Registry: reg, Logger: log, WorkerID: cfg.WorkerID,
		MaxConcurrentOrchestrations: cfg.MaxOrchestrations, MaxConcurrentActivities: cfg.MaxActivities,
		MinPollInterval: cfg.MinPollInterval, MaxPollInterval: cfg.MaxPollInterval, MessageVisibility: cfg.MessageVisibility,
		LeaseInterval: cfg.LeaseInterval, StatusFlushDelay: cfg.StatusFlushDelay,
		MaxDequeueCount: int64(cfg.MaxDequeueCount),
		CoalesceBudget:  cfg.CoalesceBudget,
		Version:         cfg.DefaultVersion, VersionMatch: cfg.VersionMatch, VersionFailure: cfg.VersionFailure,
	})
	if err != nil {
		return nil, err
	}
	// Until the engine is ready, client calls answer "unavailable" (after
	// waiting for the engine's first start attempt, at most startWait).
	ready := func(ctx context.Context) error { return eng.AwaitReady(ctx, startWait) }
	c := client.New(gatedBackend{Backend: hub, ready: ready}, reg, eng)
	c.SetDefaultVersion(cfg.DefaultVersion)
	base := "/" + h.Config().RoutePrefix + "/durabletask"
	if h.Config().RoutePrefix == "" {
		base = "/durabletask"
	}
	api := durableapi.New(c, durableapi.Options{BasePath: base, HubName: cfg.HubName, Logger: log})
	a := &App{Config: cfg, Log: log, Handler: h, Registry: reg, Store: store, Engine: eng, Client: c, API: api, Wakes: wakes}
	if wakes != nil {
		vis, refresh := eng.MessageVisibility(), watchdogRefresh(eng.MessageVisibility())
		a.Watchdog, err = wake.NewWatchdog(wake.WatchdogOptions{Backend: store, Busy: eng.Busy, Logger: log,
			Delay: watchdogDelay(vis, eng.LeaseInterval(), refresh), Refresh: refresh})
		if err != nil {
			return nil, err
		}
	}
	// Bound even when disabled by app setting, which only the host reads:
	// the handler would warn of a function without Go code.
	if wakeFn.Name != "" && !wakeFn.IsHTTP() {
		if err := h.HandleInvocation(wakeFn.Name, WakeFunc(eng)); err != nil {
			return nil, err
		}
	}
	if _, ok := h.Config().Function(ManagementFunction); ok {
		if err := h.HandleHTTP(ManagementFunction, api.Handle); err != nil {
			return nil, err
		}
	}
	// The dashboard: its files are served by their own anonymous function
	// (dashboard.Function) so that the page opens without the key and asks
	// for it; its data calls go to the management API above, keyed.
	if _, ok := h.Config().Function(dashboard.Function); ok {
		if err := h.HandleHTTP(dashboard.Function, dashboard.Serve); err != nil {
			return nil, err
		}
		h.SetRootRedirect(base + "/ui/")
	}
	return a, nil
}

// Run serves HTTP at once and starts the engine, retrying while storage
// cannot be reached (client calls answer 503 meanwhile). When ctx is
// cancelled it stops both within Config.StopGrace (plus the engine's short
// release budget): in-flight requests and work drain, then what remains is
// interrupted. It returns an error when the engine refused the task hub
// (another app holds it, or its partition count differs), when the server
// failed, or when the stop was not clean.
func (a *App) Run(ctx context.Context) error {
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	served := make(chan error, 1)
	go func() { served <- a.Handler.Run(serveCtx, a.Config.Addr) }()
	started := make(chan error, 1)
	go func() { started <- a.Engine.Start(ctx) }()
	stopWatchdog := a.runWatchdog()

	var errs []error
	serving := true
	select {
	case err := <-started:
		if err != nil && ctx.Err() == nil {
			// Refused: another app holds the hub, or its layout differs.
			stopServing()
			stopCtx, cancel := context.WithTimeout(context.Background(), a.Config.StopGrace)
			defer cancel()
			a.Engine.Stop(stopCtx)
			stopWatchdog()
			<-served
			return err
		}
		select {
		case <-ctx.Done():
		case err := <-served:
			serving = false
			errs = append(errs, err)
		}
	case <-ctx.Done():
	case err := <-served:
		serving = false
		errs = append(errs, err)
	}

	// Stop: the server and the engine drain side by side, each within the
	// grace.
	began := time.Now()
	a.Log.Info("stopping", "grace", a.Config.StopGrace)
	stopServing()
	stopCtx, cancel := context.WithTimeout(context.Background(), a.Config.StopGrace)
	defer cancel()
	if err := a.Engine.Stop(stopCtx); err != nil {
		a.Log.Error("the engine did not stop cleanly", "err", err)
		errs = append(errs, err)
	}
	stopWatchdog()
	if serving {
		if err := <-served; err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	a.Log.Info("stopped cleanly", "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// runWatchdog runs the watchdog (if any) until the returned function is
// called, after the engine stopped: it then leaves a wake visible shortly
// for the work the stop left behind, or deletes it when there is none.
func (a *App) runWatchdog() (stop func()) {
	w := a.Watchdog
	if w == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	return func() {
		cancel()
		<-done
		left := a.Engine.LeftWork() || a.Engine.Busy()
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w.Release(rctx, left); err != nil {
			a.Log.Warn("watchdog: the wake for this worker could not be settled at stop", "leftWork", left, "err", err)
			return
		}
		if left {
			a.Log.Info("the stop left work for another worker: a wake message becomes visible shortly", "in", wake.DefaultWatchdogStopDelay)
		}
	}
}

// Main is the whole main function of a durable function app: it loads the
// configuration, assembles the app with defs, lets bind attach the app's
// HTTP functions, and runs until SIGINT or SIGTERM. It exits non-zero on
// failure, as the Functions host expects: when the task hub was refused,
// and when the stop was not clean (work had to be interrupted after the
// grace, or messages and partitions could not be released).
func Main(bind func(*App) error, defs ...durable.Definition) {
	cfg, err := LoadConfig(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "configuration error:", err)
		os.Exit(2)
	}
	log := handler.NewHostLogger(os.Stdout, os.Stderr, cfg.LogLevel)
	app, err := New(cfg, log, defs...)
	if err == nil && bind != nil {
		err = bind(app)
	}
	if err != nil {
		log.Error("cannot start the function app", "err", err)
		os.Exit(1)
	}
	// OpenTelemetry, when the OTEL_* settings ask for it; its spans and
	// metrics are flushed after the app stopped.
	flush, signals, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: serviceName(cfg), InstanceID: app.Engine.WorkerID()}, log)
	if err != nil {
		log.Error("cannot start the function app", "err", err)
		os.Exit(2)
	}
	if signals.Traces || signals.Metrics {
		log.Info("OpenTelemetry export on", "traces", signals.Traces, "metrics", signals.Metrics)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one ends the process at once.
	context.AfterFunc(ctx, stop)
	runErr := app.Run(ctx)
	flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := flush(flushCtx); err != nil {
		log.Warn("telemetry was not flushed", "err", err)
	}
	if runErr != nil {
		log.Error("function app stopped with an error", "err", runErr)
		os.Exit(1)
	}
}

// serviceName is the OpenTelemetry service.name: the app's name as the
// task hub knows it, or the executable's.
func serviceName(cfg Config) string {
	if cfg.AppName != "" {
		return cfg.AppName
	}
	return filepath.Base(os.Args[0])
}
