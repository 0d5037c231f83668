// Package funcapp assembles a durable function app: the custom handler,
// the Azure Storage task hub, its engine, the client and the management
// API. main.go of an app registers its functions and calls Main.
package funcapp

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/engine"
)

// ManagementFunction is the function folder whose catch-all route serves
// the management API.
const ManagementFunction = "DurableTaskAPI"

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
}

// New assembles an app from cfg with the given orchestrators and
// activities. It binds the management API to ManagementFunction when the
// app declares that function.
func New(cfg Config, log *slog.Logger, defs ...durable.Definition) (*App, error) {
	reg := durable.NewRegistry()
	if err := reg.Add(defs...); err != nil {
		return nil, err
	}
	h, err := handler.New(handler.Options{AppRoot: cfg.AppRoot, Logger: log, FunctionKey: cfg.FunctionKey})
	if err != nil {
		return nil, err
	}
	store, err := azurestorage.New(azurestorage.Options{
		ConnectionString: cfg.Storage, HubName: cfg.HubName, PartitionCount: cfg.PartitionCount, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(engine.Options{
		Backend: store, Registry: reg, Logger: log, WorkerID: cfg.WorkerID,
		MaxConcurrentOrchestrations: cfg.MaxOrchestrations, MaxConcurrentActivities: cfg.MaxActivities,
		MaxPollInterval: cfg.MaxPollInterval, MessageVisibility: cfg.MessageVisibility,
		LeaseInterval: cfg.LeaseInterval, StatusFlushDelay: cfg.StatusFlushDelay,
		MaxDequeueCount: int64(cfg.MaxDequeueCount),
	})
	if err != nil {
		return nil, err
	}
	c := client.New(store, reg, eng)
	base := "/" + h.Config().RoutePrefix + "/durabletask"
	if h.Config().RoutePrefix == "" {
		base = "/durabletask"
	}
	api := durableapi.New(c, durableapi.Options{BasePath: base, HubName: cfg.HubName, Logger: log})
	a := &App{Config: cfg, Log: log, Handler: h, Registry: reg, Store: store, Engine: eng, Client: c, API: api}
	if _, ok := h.Config().Function(ManagementFunction); ok {
		if err := h.HandleHTTP(ManagementFunction, api.Handle); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Run starts the engine, serves HTTP until ctx is cancelled, then stops
// the engine gracefully.
func (a *App) Run(ctx context.Context) error {
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err := a.Engine.Start(startCtx)
	cancel()
	if err != nil {
		return err
	}
	serveErr := a.Handler.Run(ctx, a.Config.Addr)
	stopCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Engine.Stop(stopCtx); err != nil {
		a.Log.Warn("engine did not stop cleanly", "err", err)
	}
	return serveErr
}

// Main is the whole main function of a durable function app: it loads the
// configuration, assembles the app with defs, lets bind attach the app's
// HTTP functions, and runs until SIGINT or SIGTERM. It exits non-zero on
// failure, as the Functions host expects.
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx); err != nil {
		log.Error("function app stopped with an error", "err", err)
		os.Exit(1)
	}
}
