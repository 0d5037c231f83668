package hostemulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Restart policy constants of the host (reference 1.5).
const (
	// intentionalRestartExitCode restarts the handler without counting an error.
	intentionalRestartExitCode = 200
	// errorEventsThreshold: this many error events in a row stop the host.
	errorEventsThreshold = 3
	// errorEventWindow: an error event further than this from the previous
	// one starts a new series.
	errorEventWindow = 30 * time.Minute
	// readinessPollInterval is the host's readiness polling period.
	readinessPollInterval = 25 * time.Millisecond
)

// Errors returned while waiting for a handler process.
var (
	// ErrHostStopped: the host has stopped (Stop, or the restart limit).
	ErrHostStopped = errors.New("host stopped")
	// ErrHandlerExited: the handler exited with code 0, which the host does
	// not restart; every later invocation fails.
	ErrHandlerExited = errors.New("handler process exited with code 0 and is not restarted")
)

// worker is one handler process.
type worker struct {
	id        string
	base      string // http://127.0.0.1:<port>
	cmd       *exec.Cmd
	transport *http.Transport
	stdout    *lineWriter
	stderr    *lineWriter

	exited   chan struct{} // closed once the process has been waited for
	exitCode int           // valid after exited

	// killed: the emulator killed the process on purpose (KillHandler, Stop,
	// function timeout); it must not be reported ready again.
	killed atomic.Bool
	// disposed: killed for a function timeout; the restart is not an error.
	disposed atomic.Bool
}

func (w *worker) pid() int {
	if w.cmd == nil || w.cmd.Process == nil {
		return 0
	}
	return w.cmd.Process.Pid
}

func (w *worker) kill() {
	w.killed.Store(true)
	if w.cmd != nil && w.cmd.Process != nil {
		_ = w.cmd.Process.Kill()
	}
}

func (w *worker) hasExited() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

func (w *worker) client() *http.Client {
	return &http.Client{
		Transport: w.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // the host follows no redirects
		},
	}
}

// supervise runs handler processes for the host's lifetime, applying the
// host's restart policy.
func (h *Host) supervise() {
	defer h.supervisor.Done()
	for {
		w, err := h.launch()
		if err != nil {
			if h.stopping() {
				return
			}
			h.logs.hostf(slog.LevelError, "could not start the handler: %v", err)
			if h.errorEvent(err) {
				return
			}
			h.countRestart()
			continue
		}
		if rerr := h.awaitReady(w); rerr != nil && !w.hasExited() && !h.stopping() {
			h.logs.hostf(slog.LevelError, "initializing the handler timed out after %v; killing pid %d", h.readinessTimeout, w.pid())
			w.kill()
			<-w.exited
			if h.errorEvent(rerr) {
				return
			}
			h.countRestart()
			continue
		}
		h.setReady(w)
		<-w.exited
		h.setNotReady(w)
		if h.stopping() {
			return
		}
		switch code := w.exitCode; {
		case w.disposed.Load():
			h.logs.hostf(slog.LevelInfo, "handler pid %d was stopped by the host; restarting", w.pid())
		case code == 0:
			h.logs.hostf(slog.LevelWarn, "handler pid %d exited with code 0; the host does not restart it", w.pid())
			h.mu.Lock()
			h.exitedClean = true
			h.notifyLocked()
			h.mu.Unlock()
			return
		case code == intentionalRestartExitCode:
			h.logs.hostf(slog.LevelInfo, "handler pid %d exited with code %d; restarting", w.pid(), code)
		default:
			err := fmt.Errorf("handler pid %d exited with code %d", w.pid(), code)
			h.logs.hostf(slog.LevelError, "%v", err)
			if h.errorEvent(err) {
				return
			}
		}
		h.countRestart()
	}
}

func (h *Host) stopping() bool {
	select {
	case <-h.stopCh:
		return true
	default:
		return false
	}
}

func (h *Host) countRestart() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.restarts++
}

// errorEvent records a worker error and reports whether the host must stop
// (the third error in a row, each within errorEventWindow of the previous).
func (h *Host) errorEvent(err error) bool {
	h.mu.Lock()
	var stop bool
	h.errorEvents, stop = pushErrorEvent(h.errorEvents, time.Now())
	if stop {
		h.stopErr = fmt.Errorf("exceeded http worker restart retry count (%d errors in a row); host shut down: %w", len(h.errorEvents), err)
	}
	h.mu.Unlock()
	if stop {
		h.logs.hostf(slog.LevelError, "%v", h.Err())
		h.signalStop()
		go func() { _ = h.Stop() }()
	}
	return stop
}

// pushErrorEvent adds an error event at now to the current series (a gap
// longer than errorEventWindow starts a new one) and reports whether the
// series reached errorEventsThreshold.
func pushErrorEvent(events []time.Time, now time.Time) ([]time.Time, bool) {
	if n := len(events); n > 0 && now.Sub(events[n-1]) > errorEventWindow {
		events = nil
	}
	events = append(events, now)
	return events, len(events) >= errorEventsThreshold
}

// launch starts one handler process.
func (h *Host) launch() (*worker, error) {
	id := newGUID()
	env := make(map[string]string, len(h.env)+2)
	for k, v := range h.env {
		env[k] = v
	}
	env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"] = id
	env["FUNCTIONS_HTTPWORKER_ID"] = id
	line := expandArgument(h.argLine, env, func(name string) {
		h.logs.hostf(slog.LevelWarn, "Environment variable:%%%s%% is not set", name)
	})

	w := &worker{
		id:        id,
		base:      h.HandlerURL(),
		exited:    make(chan struct{}),
		transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true},
	}
	w.stdout = &lineWriter{book: h.logs, source: SourceStdout, pid: w.pid}
	w.stderr = &lineWriter{book: h.logs, source: SourceStderr, pid: w.pid}
	cmd := exec.Command(h.exe, splitCommandLine(line)...)
	cmd.Dir = h.dir
	cmd.Env = envList(env)
	cmd.Stdout, cmd.Stderr = w.stdout, w.stderr
	cmd.WaitDelay = 2 * time.Second
	w.cmd = cmd

	h.mu.Lock()
	if h.stopping() {
		h.mu.Unlock()
		return nil, ErrHostStopped
	}
	if err := cmd.Start(); err != nil {
		h.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", h.exe, err)
	}
	h.current = w
	h.notifyLocked()
	h.mu.Unlock()
	h.logs.hostf(slog.LevelInfo, "handler pid %d started (worker %s)", w.pid(), id)

	go func() {
		_ = cmd.Wait()
		w.stdout.flush()
		w.stderr.flush()
		w.exitCode = -1
		if cmd.ProcessState != nil {
			w.exitCode = cmd.ProcessState.ExitCode()
		}
		w.transport.CloseIdleConnections()
		close(w.exited)
	}()
	return w, nil
}

// awaitReady polls GET / every 25 ms until any HTTP response arrives, the
// process exits, the host stops or the readiness timeout passes.
func (h *Host) awaitReady(w *worker) error {
	ctx, cancel := context.WithTimeout(context.Background(), h.readinessTimeout)
	defer cancel()
	go func() {
		select {
		case <-w.exited:
		case <-h.stopCh:
		case <-ctx.Done():
		}
		cancel()
	}()
	client := w.client()
	tick := time.NewTicker(readinessPollInterval)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.base+"/", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("initializing the handler: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (h *Host) setReady(w *worker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if w.killed.Load() || w.hasExited() || h.stopping() {
		return
	}
	h.readyWorker = w
	h.notifyLocked()
	h.logs.hostf(slog.LevelInfo, "handler pid %d is ready", w.pid())
}

func (h *Host) setNotReady(w *worker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readyWorker == w {
		h.readyWorker = nil
		h.notifyLocked()
	}
}

// waitWorker returns the ready handler process, waiting for one while the
// handler starts or restarts. Invocations wait at most (3+1) readiness
// timeouts like the host (limited); start-up waits until the handler is
// ready or the host gives up.
func (h *Host) waitWorker(ctx context.Context, limited bool) (*worker, error) {
	var limit <-chan time.Time
	if limited {
		t := time.NewTimer(4 * h.readinessTimeout)
		defer t.Stop()
		limit = t.C
	}
	for {
		h.mu.Lock()
		w, clean, changed := h.readyWorker, h.exitedClean, h.changed
		stopErr := h.stopErr
		h.mu.Unlock()
		switch {
		case h.stopping() && stopErr != nil:
			return nil, fmt.Errorf("%w: %w", ErrHostStopped, stopErr)
		case h.stopping():
			return nil, ErrHostStopped
		case clean:
			return nil, ErrHandlerExited
		case w != nil:
			return w, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-limit:
			return nil, fmt.Errorf("no ready handler after %v", 4*h.readinessTimeout)
		}
	}
}

// KillHandler kills the handler process with SIGKILL and returns once it has
// exited. The host then treats it as a crash: it restarts the handler
// (counting an error event) and invocations wait for the new process.
func (h *Host) KillHandler() error {
	h.mu.Lock()
	w := h.current
	if w == nil || w.hasExited() {
		h.mu.Unlock()
		return errors.New("hostemulator: no running handler process")
	}
	w.killed.Store(true)
	if h.readyWorker == w {
		h.readyWorker = nil
		h.notifyLocked()
	}
	h.mu.Unlock()
	if err := w.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("hostemulator: kill handler: %w", err)
	}
	<-w.exited
	return nil
}

// dispose kills w on purpose (function timeout) so that the supervisor
// restarts it without counting an error, as the host disposes a channel.
func (h *Host) dispose(w *worker) {
	w.disposed.Store(true)
	h.setNotReady(w)
	w.kill()
}

// buildEnv assembles the handler's environment: the emulator's own
// environment, local.settings.json values not already set there, core-tools
// defaults not already set, extra entries (which override all of these), and
// finally the host's fixed variables.
func buildEnv(base []string, local map[string]string, extra []string, defaults, fixed map[string]string) map[string]string {
	env := map[string]string{}
	for _, kv := range base {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	for _, src := range []map[string]string{local, defaults} {
		for k, v := range src {
			if _, set := env[k]; !set {
				env[k] = v
			}
		}
	}
	for _, kv := range extra {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	for k, v := range fixed {
		env[k] = v
	}
	return env
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// resolveDir resolves a possibly relative directory against root.
func resolveDir(root, dir string) string {
	switch {
	case dir == "":
		return root
	case filepath.IsAbs(dir):
		return dir
	}
	return filepath.Join(root, dir)
}

// resolveExecutable applies the host's rule: a relative path naming an
// existing file under dir is used as that file; anything else is a command
// looked up on PATH (absolute paths are used as they are).
func resolveExecutable(dir, exe string) (string, error) {
	if filepath.IsAbs(exe) {
		return exe, nil
	}
	candidate := filepath.Join(dir, exe)
	if st, err := os.Stat(candidate); err == nil && !st.IsDir() {
		return candidate, nil
	}
	path, err := exec.LookPath(exe)
	if err != nil {
		return "", fmt.Errorf("handler executable %q is neither a file under %s nor a command on PATH: %w", exe, dir, err)
	}
	return path, nil
}

// freePort finds a free TCP port on 127.0.0.1, as the host does.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
