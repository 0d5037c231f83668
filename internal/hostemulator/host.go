package hostemulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/go-durable/durablefunctions/handler"
)

// DefaultHostVersion is the host version the emulator announces.
const DefaultHostVersion = "4.1037.0.0"

// DefaultReadinessTimeout is how long the emulator waits for the handler to
// answer its first GET / (the host's default initializationTimeout).
const DefaultReadinessTimeout = 30 * time.Second

// DefaultFunctionTimeout is the host's functionTimeout default outside
// Consumption plans.
const DefaultFunctionTimeout = 30 * time.Minute

// maxHostRequestBody is the host's request body limit (100 MB).
const maxHostRequestBody = 100 * 1000 * 1000

// Options configures Start.
type Options struct {
	// AppRoot is the directory holding host.json, local.settings.json and
	// the function folders.
	AppRoot string
	// Executable overrides customHandler.description.defaultExecutablePath.
	// Either is resolved the host's way: a relative path naming an existing
	// file under the worker directory (default: the app root) is used as
	// such, anything else is looked up on PATH.
	Executable string
	// Env holds extra "KEY=VALUE" entries for the handler's environment. They
	// win over the emulator's own environment and local.settings.json, but
	// not over the variables the host itself sets (port, worker ID, app root).
	Env []string
	// Logger receives every captured log line and the emulator's own events.
	// Nil discards them (Logs still returns them).
	Logger *slog.Logger
	// ReadinessTimeout bounds the wait for the handler's first answer to
	// GET /. 0 means host.json's customHandler.initializationTimeout, else
	// DefaultReadinessTimeout.
	ReadinessTimeout time.Duration
	// FunctionTimeout bounds one invocation; on expiry the invocation fails
	// and the handler process is restarted, as the host does. 0 means
	// host.json's functionTimeout, else DefaultFunctionTimeout; negative
	// means unbounded.
	FunctionTimeout time.Duration
	// PublicAddr is the public listener address. Empty means 127.0.0.1:0.
	PublicAddr string
	// HostVersion is the version sent in X-Azure-Functions-HostVersion and
	// User-Agent. Empty means DefaultHostVersion.
	HostVersion string
	// QueuePollInterval turns on the queue listeners, as the host runs
	// them: every enabled queueTrigger function's queue (queueName with
	// %SETTING% resolved, in the storage its connection setting names) is
	// polled, with a backoff from 100 ms up to this interval while it is
	// empty (host.json's queues.maxPollingInterval, 1 minute on the host; a
	// test wants well under a second). Each message is hidden for 10
	// minutes and invoked; it is deleted on success, made visible again on
	// failure, and moved to "<queue>-poison" after maxDequeueCount (5)
	// dequeues. host.json's extensions.queues batchSize, maxDequeueCount,
	// visibilityTimeout and messageEncoding (base64 by default) apply.
	// 0 means no listeners: queue triggers run only through
	// InvokeQueueTrigger.
	QueuePollInterval time.Duration
}

// Host is a running emulated Functions host: a supervised handler process
// plus a public HTTP listener.
type Host struct {
	cfg              *handler.AppConfig
	router           *handler.Router
	logs             *logBook
	hostVersion      string
	readinessTimeout time.Duration
	functionTimeout  time.Duration

	exe     string
	argLine string
	dir     string
	env     map[string]string
	port    int

	publicLn  net.Listener
	publicSrv *http.Server

	supervisor sync.WaitGroup
	stopOnce   sync.Once
	stopCh     chan struct{} // closed when the host starts stopping
	done       chan struct{} // closed when the host has stopped

	mu          sync.Mutex
	current     *worker // latest process, running or not
	readyWorker *worker // process that passed readiness and still runs
	exitedClean bool    // the handler exited with code 0: no restart
	restarts    int
	errorEvents []time.Time
	stopErr     error
	invErrs     []InvocationError
	deliveries  []QueueDelivery
	changed     chan struct{} // closed and replaced on every state change
}

// Start opens the public listener, launches the handler the way the
// Functions host does and returns once the handler answers GET / (through
// restarts, if it crashes while starting). ctx bounds only the start-up;
// call Stop to end the host.
func Start(ctx context.Context, opts Options) (*Host, error) {
	if opts.AppRoot == "" {
		return nil, errors.New("hostemulator: Options.AppRoot is required")
	}
	cfg, err := handler.LoadAppConfig(opts.AppRoot)
	if err != nil {
		return nil, fmt.Errorf("hostemulator: %w", err)
	}
	router, err := handler.NewRouter(cfg.RoutePrefix, cfg.Functions)
	if err != nil {
		return nil, fmt.Errorf("hostemulator: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Host{
		cfg:              cfg,
		router:           router,
		logs:             newLogBook(logger),
		hostVersion:      opts.HostVersion,
		readinessTimeout: opts.ReadinessTimeout,
		stopCh:           make(chan struct{}),
		done:             make(chan struct{}),
		changed:          make(chan struct{}),
	}
	if h.hostVersion == "" {
		h.hostVersion = DefaultHostVersion
	}
	if h.readinessTimeout <= 0 {
		h.readinessTimeout = cfg.CustomHandler.InitializationTimeout
	}
	if h.readinessTimeout <= 0 {
		h.readinessTimeout = DefaultReadinessTimeout
	}
	// 0 in h.functionTimeout means unbounded from here on.
	switch {
	case opts.FunctionTimeout != 0:
		h.functionTimeout = max(opts.FunctionTimeout, 0)
	case cfg.FunctionTimeout != 0:
		h.functionTimeout = max(cfg.FunctionTimeout, 0)
	default:
		h.functionTimeout = DefaultFunctionTimeout
	}

	publicAddr := opts.PublicAddr
	if publicAddr == "" {
		publicAddr = "127.0.0.1:0"
	}
	if h.publicLn, err = net.Listen("tcp", publicAddr); err != nil {
		return nil, fmt.Errorf("hostemulator: public listener: %w", err)
	}
	if err := h.prepareProcess(opts); err != nil {
		_ = h.publicLn.Close()
		return nil, fmt.Errorf("hostemulator: %w", err)
	}
	h.publicSrv = &http.Server{
		Handler:           http.HandlerFunc(h.servePublic),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() { _ = h.publicSrv.Serve(h.publicLn) }()

	h.logs.hostf(slog.LevelInfo, "starting handler %s (port %d, app root %s)", h.exe, h.port, cfg.Root)
	h.supervisor.Add(1)
	go h.supervise()

	if _, err := h.waitWorker(ctx, false); err != nil {
		_ = h.Stop()
		return nil, fmt.Errorf("hostemulator: handler did not become ready: %w", err)
	}
	if opts.QueuePollInterval > 0 {
		if err := h.startQueueListeners(opts.QueuePollInterval); err != nil {
			_ = h.Stop()
			return nil, fmt.Errorf("hostemulator: %w", err)
		}
	}
	return h, nil
}

// prepareProcess resolves the executable, arguments, working directory,
// port and environment.
func (h *Host) prepareProcess(opts Options) error {
	desc := h.cfg.CustomHandler.Description
	exe := opts.Executable
	if exe == "" {
		exe = desc.DefaultExecutablePath
	}
	if exe == "" {
		return errors.New("customHandler.description.defaultExecutablePath is empty in host.json and Options.Executable is not set")
	}
	workerDir := resolveDir(h.cfg.Root, desc.WorkerDirectory)
	path, err := resolveExecutable(workerDir, exe)
	if err != nil {
		return err
	}
	h.exe = path
	h.dir = resolveDir(h.cfg.Root, desc.WorkingDirectory)

	h.port = h.cfg.CustomHandler.Port
	if h.port == 0 {
		if h.port, err = freePort(); err != nil {
			return err
		}
	}
	local, err := readLocalSettings(filepath.Join(h.cfg.Root, "local.settings.json"))
	if err != nil {
		return err
	}
	publicPort := h.publicLn.Addr().(*net.TCPAddr).Port
	h.env = buildEnv(os.Environ(), local, opts.Env, map[string]string{
		"AZURE_FUNCTIONS_ENVIRONMENT":     "Development",
		"FUNCTIONS_CORETOOLS_ENVIRONMENT": "true",
		"WEBSITE_HOSTNAME":                "localhost:" + strconv.Itoa(publicPort),
	}, map[string]string{
		"AzureWebJobsScriptRoot":       h.cfg.Root,
		"FUNCTIONS_CUSTOMHANDLER_PORT": strconv.Itoa(h.port),
		"FUNCTIONS_HTTPWORKER_PORT":    strconv.Itoa(h.port),
		"FUNCTIONS_APP_ROOT_PATH":      h.cfg.Root,
	})

	// The host joins arguments, the worker path and worker arguments into one
	// command line; %VAR% tokens are expanded per process start.
	line := ""
	for _, a := range desc.Arguments {
		line += " " + a
	}
	if desc.DefaultWorkerPath != "" {
		line += ` "` + desc.DefaultWorkerPath + `"`
	}
	for _, a := range desc.WorkerArguments {
		line += " " + a
	}
	h.argLine = line
	return nil
}

// readLocalSettings reads local.settings.json's Values; a missing file is
// no settings.
func readLocalSettings(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read local.settings.json: %w", err)
	}
	var ls struct {
		IsEncrypted bool                       `json:"IsEncrypted"`
		Values      map[string]json.RawMessage `json:"Values"`
	}
	if err := json.Unmarshal(trimBOM(data), &ls); err != nil {
		return nil, fmt.Errorf("%s: malformed JSON: %w", path, err)
	}
	if ls.IsEncrypted {
		return nil, fmt.Errorf("%s: encrypted settings are not supported", path)
	}
	out := make(map[string]string, len(ls.Values))
	for k, v := range ls.Values {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
		} else if string(v) != "null" {
			out[k] = string(v)
		}
	}
	return out, nil
}

func trimBOM(b []byte) []byte {
	if len(b) >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf {
		return b[3:]
	}
	return b
}

// URL returns the public base URL, e.g. http://127.0.0.1:54321.
func (h *Host) URL() string { return "http://" + h.publicLn.Addr().String() }

// HandlerURL returns the base URL of the handler process
// (http://127.0.0.1:<FUNCTIONS_CUSTOMHANDLER_PORT>).
func (h *Host) HandlerURL() string { return "http://127.0.0.1:" + strconv.Itoa(h.port) }

// Config returns the app configuration the emulator loaded.
func (h *Host) Config() *handler.AppConfig { return h.cfg }

// Logs returns the captured log lines, oldest first.
func (h *Host) Logs() []LogLine { return h.logs.snapshot() }

// WaitForLog waits until a captured line satisfies match and returns it.
func (h *Host) WaitForLog(ctx context.Context, match func(LogLine) bool) (LogLine, error) {
	return h.logs.wait(ctx, match)
}

// WaitReady waits until a handler process is ready to take invocations
// (after a start or restart). It fails once the host has stopped or the
// handler has exited with code 0.
func (h *Host) WaitReady(ctx context.Context) error {
	_, err := h.waitWorker(ctx, false)
	return err
}

// Restarts returns how many times the handler process was started again
// after the first start.
func (h *Host) Restarts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.restarts
}

// PID returns the process ID of the current handler process (0 if none).
func (h *Host) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.current == nil {
		return 0
	}
	return h.current.pid()
}

// InvocationErrors returns every invocation failure and every contract quirk
// the handler tripped, oldest first. A correct handler leaves it empty.
func (h *Host) InvocationErrors() []InvocationError {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]InvocationError(nil), h.invErrs...)
}

// Done is closed once the host has stopped: after Stop, or when the handler
// failed three times in a row.
func (h *Host) Done() <-chan struct{} { return h.done }

// Err returns why the host stopped by itself (restart limit exceeded), nil
// while it runs or after Stop.
func (h *Host) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopErr
}

// Stop kills the handler process (as the host does on shutdown) and closes
// the public listener. It is idempotent and always returns nil.
func (h *Host) Stop() error {
	h.signalStop()
	h.mu.Lock()
	w := h.current
	h.mu.Unlock()
	if w != nil {
		w.kill()
	}
	h.supervisor.Wait()
	h.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.publicSrv.Shutdown(ctx); err != nil {
			_ = h.publicSrv.Close()
		}
		close(h.done)
	})
	return nil
}

func (h *Host) signalStop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.stopCh:
	default:
		close(h.stopCh)
		h.notifyLocked()
	}
}

func (h *Host) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// Functions returns the functions of the app.
func (h *Host) Functions() []handler.FunctionInfo {
	return append([]handler.FunctionInfo(nil), h.cfg.Functions...)
}
