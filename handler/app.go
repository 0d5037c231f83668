package handler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Environment variables the Functions host sets for a custom handler.
const (
	// EnvPort is the port the host expects the handler to listen on.
	EnvPort = "FUNCTIONS_CUSTOMHANDLER_PORT"
	// EnvLegacyPort is the legacy name of EnvPort, set to the same value.
	EnvLegacyPort = "FUNCTIONS_HTTPWORKER_PORT"
	// EnvAppRoot is the function app root.
	EnvAppRoot = "FUNCTIONS_APP_ROOT_PATH"
	// EnvWebsiteHostname is the app's public host[:port]: the Functions
	// host sets it in Azure, and func start sets localhost:<port>.
	EnvWebsiteHostname = "WEBSITE_HOSTNAME"
)

// DefaultAddr is where Run listens in standalone mode when given no address.
const DefaultAddr = "127.0.0.1:7071"

// DefaultMaxRequestBodyBytes is the default request body limit (8 MiB).
const DefaultMaxRequestBodyBytes = 8 << 20

// Options configures New.
type Options struct {
	// AppRoot is the directory holding host.json and the function folders.
	// Empty means $FUNCTIONS_APP_ROOT_PATH, else the working directory.
	AppRoot string
	// Logger receives the handler's logs. Nil means NewHostLogger(os.Stdout,
	// os.Stderr, slog.LevelInfo), which suits the Functions host: it logs
	// stdout lines as information and stderr lines as errors or warnings.
	Logger *slog.Logger
	// MaxRequestBodyBytes limits request bodies; larger ones get 413.
	// 0 means DefaultMaxRequestBodyBytes.
	MaxRequestBodyBytes int64
	// ShutdownTimeout bounds the graceful shutdown of Run and Serve once
	// their context is cancelled. 0 means 10 seconds.
	ShutdownTimeout time.Duration
	// FunctionKey, when set, is required in standalone mode by every
	// function whose authLevel is not anonymous (401 otherwise).
	FunctionKey string
	// PublicHost is the host[:port] used, under the Functions host, in
	// Request.URL for requests that named no host. Empty means
	// $WEBSITE_HOSTNAME; a wildcard address there (0.0.0.0) becomes
	// localhost.
	PublicHost string
}

// App is a Functions custom handler: the function.json declarations of an
// app root plus the Go code bound to them.
type App struct {
	cfg      *AppConfig
	log      *slog.Logger
	maxBody  int64
	shutdown time.Duration
	key      string
	router   *Router
	// publicHost names the app under the Functions host (Options.PublicHost).
	publicHost string

	mu          sync.RWMutex
	httpFuncs   map[string]HTTPFunc       // by exact function name
	invokeFuncs map[string]InvocationFunc // by exact function name
	// rootRedirect is where GET / goes in standalone mode ("" for 404).
	rootRedirect string
}

// New reads host.json (extensions.http.routePrefix, default "api") and every
// <dir>/function.json under the app root. It fails, naming the file, when
// any of them is missing, malformed or invalid.
func New(opts Options) (*App, error) {
	root := opts.AppRoot
	if root == "" {
		root = os.Getenv(EnvAppRoot)
	}
	if root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("handler: find app root: %w", err)
		}
		root = wd
	}
	cfg, err := LoadAppConfig(root)
	if err != nil {
		return nil, fmt.Errorf("handler: %w", err)
	}
	router, err := NewRouter(cfg.RoutePrefix, cfg.Functions)
	if err != nil {
		return nil, fmt.Errorf("handler: %w", err)
	}
	a := &App{
		cfg:         cfg,
		log:         opts.Logger,
		maxBody:     opts.MaxRequestBodyBytes,
		shutdown:    opts.ShutdownTimeout,
		key:         opts.FunctionKey,
		router:      router,
		publicHost:  publicHostName(opts.PublicHost),
		httpFuncs:   map[string]HTTPFunc{},
		invokeFuncs: map[string]InvocationFunc{},
	}
	if a.log == nil {
		a.log = NewHostLogger(os.Stdout, os.Stderr, slog.LevelInfo)
	}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxRequestBodyBytes
	}
	if a.shutdown <= 0 {
		a.shutdown = 10 * time.Second
	}
	return a, nil
}

// publicHostName returns host (or $WEBSITE_HOSTNAME when host is empty)
// with a wildcard address replaced by localhost, as the Durable Functions
// JavaScript client does.
func publicHostName(host string) string {
	if host == "" {
		host = strings.TrimSpace(os.Getenv(EnvWebsiteHostname))
	}
	if host == "" {
		return ""
	}
	name, port, err := net.SplitHostPort(host)
	if err != nil {
		name, port = strings.Trim(host, "[]"), ""
	}
	if name == "" || name == "0.0.0.0" || name == "::" {
		name = "localhost"
	}
	if port == "" {
		if strings.Contains(name, ":") {
			return "[" + name + "]"
		}
		return name
	}
	return net.JoinHostPort(name, port)
}

// Config returns the app configuration New read; callers must not modify it.
func (a *App) Config() *AppConfig { return a.cfg }

// HandleHTTP binds fn to the httpTrigger function in folder functionName
// (matched case-insensitively). It fails if there is no such function.json,
// if its trigger is not an httpTrigger, or if it has no http output binding.
// (A route starting with "admin" or "runtime" already made New fail, as the
// host rejects such functions.)
func (a *App) HandleHTTP(functionName string, fn HTTPFunc) error {
	if fn == nil {
		return fmt.Errorf("handler: HandleHTTP(%q): nil function", functionName)
	}
	info, ok := a.cfg.Function(functionName)
	if !ok {
		return fmt.Errorf("handler: HandleHTTP(%q): no function.json for this function under %s", functionName, a.cfg.Root)
	}
	if !info.IsHTTP() {
		return fmt.Errorf("handler: HandleHTTP(%q): trigger is %q, not httpTrigger", functionName, info.TriggerType)
	}
	if info.HTTPOutput == "" {
		return fmt.Errorf("handler: HandleHTTP(%q): function.json has no http output binding", functionName)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.httpFuncs[info.Name] = fn
	return nil
}

// SetRootRedirect makes GET and HEAD of "/" in standalone mode answer
// 302 Found with Location target (the dashboard, say) when no function
// route matches "/"; "" restores the 404. Under the Functions host the
// host owns "/".
func (a *App) SetRootRedirect(target string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rootRedirect = target
}

// HandleInvocation binds fn to a function whose trigger is not an
// httpTrigger (queueTrigger, timerTrigger...), matched case-insensitively.
func (a *App) HandleInvocation(functionName string, fn InvocationFunc) error {
	if fn == nil {
		return fmt.Errorf("handler: HandleInvocation(%q): nil function", functionName)
	}
	info, ok := a.cfg.Function(functionName)
	if !ok {
		return fmt.Errorf("handler: HandleInvocation(%q): no function.json for this function under %s", functionName, a.cfg.Root)
	}
	if info.IsHTTP() {
		return fmt.Errorf("handler: HandleInvocation(%q): an httpTrigger function; use HandleHTTP", functionName)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.invokeFuncs[info.Name] = fn
	return nil
}

// Functions describes every function found under the app root, sorted by
// name.
func (a *App) Functions() []FunctionInfo {
	out := make([]FunctionInfo, len(a.cfg.Functions))
	for i, f := range a.cfg.Functions {
		f.Methods = slices.Clone(f.Methods)
		f.Bindings = slices.Clone(f.Bindings)
		out[i] = f
	}
	return out
}

func (a *App) httpFunc(name string) HTTPFunc {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.httpFuncs[name]
}

func (a *App) invocationFunc(name string) InvocationFunc {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.invokeFuncs[name]
}

// Mode says which server the handler runs.
type Mode int

const (
	// ModeStandalone serves the public routes itself.
	ModeStandalone Mode = iota
	// ModeHost serves the custom-handler protocol to a Functions host.
	ModeHost
)

// String returns "standalone" or "host".
func (m Mode) String() string {
	if m == ModeHost {
		return "host"
	}
	return "standalone"
}

// ListenAddress decides the mode and listen address the way Run does: when
// FUNCTIONS_CUSTOMHANDLER_PORT (or legacy FUNCTIONS_HTTPWORKER_PORT) is set,
// host mode on 127.0.0.1:<port>; otherwise standalone mode on addr
// (DefaultAddr when empty).
func ListenAddress(addr string) (Mode, string, error) {
	return listenAddress(os.Getenv, addr)
}

func listenAddress(getenv func(string) string, addr string) (Mode, string, error) {
	for _, key := range []string{EnvPort, EnvLegacyPort} {
		v := strings.TrimSpace(getenv(key))
		if v == "" {
			continue
		}
		port, err := strconv.Atoi(v)
		if err != nil || port <= 0 || port > 65535 {
			return ModeHost, "", fmt.Errorf("handler: %s=%q is not a valid port", key, v)
		}
		return ModeHost, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
	}
	if addr == "" {
		addr = DefaultAddr
	}
	return ModeStandalone, addr, nil
}

// Run decides the mode with ListenAddress, listens, and serves HostHandler
// (host mode) or StandaloneHandler (standalone mode) until ctx is cancelled
// (then it shuts down gracefully and returns nil) or the server fails.
func (a *App) Run(ctx context.Context, addr string) error {
	mode, listenAddr, err := ListenAddress(addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return fmt.Errorf("handler: listen on %s: %w", listenAddr, err)
	}
	h := a.StandaloneHandler()
	if mode == ModeHost {
		h = a.HostHandler()
	}
	a.log.Info("handler listening", "mode", mode.String(), "addr", ln.Addr().String(),
		"appRoot", a.cfg.Root, "routePrefix", a.cfg.RoutePrefix)
	return a.Serve(ctx, ln, h)
}

// Serve serves h on ln until ctx is cancelled, then shuts down gracefully
// (bounded by Options.ShutdownTimeout) and returns nil; it returns an error
// if the server fails. It closes ln. Tests use it with a port-0 listener.
func (a *App) Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	a.warnUnbound()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("handler: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.shutdown)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-served; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("handler: shut down: %w", err)
	}
	a.log.Info("handler stopped", "addr", ln.Addr().String())
	return nil
}

func (a *App) warnUnbound() {
	for _, f := range a.cfg.Functions {
		if f.Disabled {
			continue
		}
		if (f.IsHTTP() && a.httpFunc(f.Name) == nil) || (!f.IsHTTP() && a.invocationFunc(f.Name) == nil) {
			a.log.Warn("function has no Go code bound; calls will fail with 501", "function", f.Name, "trigger", f.TriggerType)
		}
	}
}

// NewHostLogger returns a text logger that writes records below Warn to
// stdout and Warn and above to stderr. The Functions host turns stdout lines
// into information logs and stderr lines into errors (warnings when the line
// contains "warn", which slog's level=WARN does).
func NewHostLogger(stdout, stderr io.Writer, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	return slog.New(&splitHandler{
		low:  slog.NewTextHandler(stdout, opts),
		high: slog.NewTextHandler(stderr, opts),
	})
}

type splitHandler struct{ low, high slog.Handler }

func (s *splitHandler) pick(l slog.Level) slog.Handler {
	if l >= slog.LevelWarn {
		return s.high
	}
	return s.low
}

// Enabled reports whether the handler for level l is enabled.
func (s *splitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return s.pick(l).Enabled(ctx, l)
}

// Handle writes r to stdout or stderr by level.
func (s *splitHandler) Handle(ctx context.Context, r slog.Record) error {
	return s.pick(r.Level).Handle(ctx, r)
}

// WithAttrs adds attributes to both outputs.
func (s *splitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &splitHandler{low: s.low.WithAttrs(attrs), high: s.high.WithAttrs(attrs)}
}

// WithGroup opens a group on both outputs.
func (s *splitHandler) WithGroup(name string) slog.Handler {
	return &splitHandler{low: s.low.WithGroup(name), high: s.high.WithGroup(name)}
}
