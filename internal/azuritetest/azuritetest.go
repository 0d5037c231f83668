// Package azuritetest provides a running Azurite storage emulator to tests
// and tools.
//
// Tests call ConnectionString to get an explicit connection string: the first
// call in a test binary starts one Azurite (from the module's node_modules,
// see package.json) that serves every test of the binary, and Main, run from
// TestMain, stops it again. When the environment variable DURABLE_TEST_STORAGE
// is set, its value is used instead and nothing is started.
//
// Tools that need an emulator of their own (a benchmark, for example) use
// Start and Server.Stop.
package azuritetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvStorage names the environment variable that, when set, holds the
// connection string tests use instead of starting Azurite.
const EnvStorage = "DURABLE_TEST_STORAGE"

// Azurite's well-known development account.
const (
	accountName = "devstoreaccount1"
	accountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

const (
	// startTimeout bounds how long Start waits for the three ports.
	startTimeout = 30 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 3 * time.Second
	// startAttempts retries a start whose free ports were taken meanwhile.
	startAttempts = 3
)

// Server is a running Azurite process serving blobs, queues and tables on
// loopback ports.
type Server struct {
	// BlobPort, QueuePort and TablePort are the ports Azurite listens on.
	BlobPort, QueuePort, TablePort int

	dir     string
	ownsDir bool
	proc    *os.Process
	exited  chan struct{} // closed when the process has been waited for
	waitErr error         // valid after exited is closed
	output  *tailBuffer   // the last bytes of Azurite's stdout and stderr

	stopOnce sync.Once
	stopErr  error
}

// ConnectionString returns an explicit connection string (account, key and
// the three endpoints) for the server.
func (s *Server) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;"+
		"BlobEndpoint=http://127.0.0.1:%d/%s;QueueEndpoint=http://127.0.0.1:%d/%s;TableEndpoint=http://127.0.0.1:%d/%s;",
		accountName, accountKey, s.BlobPort, accountName, s.QueuePort, accountName, s.TablePort, accountName)
}

// Dir returns the directory that holds Azurite's data.
func (s *Server) Dir() string { return s.dir }

// Start launches a new Azurite on free loopback ports, storing its data in
// dir (a new temporary directory, removed again by Stop, when dir is ""), and
// waits until all three services answer HTTP. Azurite is found in
// node_modules of the Go module that contains the working directory. On
// Linux the process is killed when the calling process dies. ctx bounds the
// start only, not the server's lifetime.
func Start(ctx context.Context, dir string) (*Server, error) {
	script, err := azuriteScript()
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("azuritetest: node is not on PATH (Azurite needs Node.js): %w", err)
	}
	ownsDir := dir == ""
	if ownsDir {
		if dir, err = os.MkdirTemp("", "azurite-"); err != nil {
			return nil, fmt.Errorf("azuritetest: create data directory: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("azuritetest: create data directory: %w", err)
	}
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		s, err := startOnce(ctx, node, script, dir)
		if err == nil {
			s.ownsDir = ownsDir
			return s, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	if ownsDir {
		_ = os.RemoveAll(dir)
	}
	return nil, lastErr
}

// startOnce makes one attempt to start Azurite on three free ports.
func startOnce(ctx context.Context, node, script, dir string) (*Server, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	s := &Server{
		BlobPort: ports[0], QueuePort: ports[1], TablePort: ports[2],
		dir:    dir,
		exited: make(chan struct{}),
		output: &tailBuffer{max: 4096},
	}
	args := []string{script,
		"--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
		"--blobPort", strconv.Itoa(s.BlobPort), "--queuePort", strconv.Itoa(s.QueuePort), "--tablePort", strconv.Itoa(s.TablePort),
		"--location", dir, "--silent", "--disableTelemetry", "--skipApiVersionCheck",
	}
	cmd := exec.Command(node, args...)
	cmd.Dir = dir
	cmd.Stdout = s.output
	cmd.Stderr = s.output
	setParentDeathSignal(cmd)

	// The parent-death signal fires when the OS thread that started the
	// child exits, so start and wait on a thread that stays locked (and
	// therefore alive) for the child's whole life.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			runtime.UnlockOSThread()
			started <- err
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(s.exited)
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("azuritetest: start %s %s: %w", node, script, err)
	}
	s.proc = cmd.Process

	if err := s.waitReady(ctx); err != nil {
		_ = s.kill()
		return nil, err
	}
	return s, nil
}

// waitReady polls the three ports until each answers HTTP, the process exits,
// ctx ends or startTimeout passes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	pending := []int{s.BlobPort, s.QueuePort, s.TablePort}
	for {
		remaining := pending[:0]
		for _, port := range pending {
			if !answers(ctx, client, port) {
				remaining = append(remaining, port)
			}
		}
		pending = remaining
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("azuritetest: Azurite exited during start-up (%v); output:\n%s", s.waitErr, s.output.String())
		case <-ctx.Done():
			return fmt.Errorf("azuritetest: Azurite did not answer on ports %v within %v: %w; output:\n%s", pending, startTimeout, ctx.Err(), s.output.String())
		case <-ticker.C:
		}
	}
}

// answers reports whether something answers HTTP on the loopback port.
func answers(ctx context.Context, client *http.Client, port int) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/%s?comp=list", port, accountName), nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// Stop terminates Azurite (SIGTERM, then SIGKILL after a short grace period)
// and removes its data directory if Start created it. It is safe to call more
// than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.proc != nil {
			_ = s.proc.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(stopGrace):
				s.stopErr = s.kill()
			}
		}
		if s.ownsDir {
			if err := os.RemoveAll(s.dir); err != nil && s.stopErr == nil {
				s.stopErr = fmt.Errorf("azuritetest: remove %s: %w", s.dir, err)
			}
		}
	})
	return s.stopErr
}

// kill sends SIGKILL and waits for the process to be reaped.
func (s *Server) kill() error {
	if err := s.proc.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("azuritetest: kill Azurite: %w", err)
	}
	<-s.exited
	return nil
}

// freePorts asks the kernel for n distinct free loopback ports. They are
// released before Azurite binds them, so another process may take one
// meanwhile; Start retries in that case.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("azuritetest: find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ModuleRoot walks up from the working directory to the directory holding
// go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("azuritetest: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("azuritetest: no go.mod found above the working directory")
		}
		dir = parent
	}
}

// azuriteScript locates node_modules/azurite/dist/src/azurite.js at the
// module root.
func azuriteScript() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "node_modules", "azurite", "dist", "src", "azurite.js")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("azuritetest: Azurite is not installed (run `npm ci` in %s): %w", root, err)
	}
	return script, nil
}

// shared is the Azurite started by ConnectionString for this test binary.
var shared struct {
	mu     sync.Mutex
	server *Server
	err    error
}

// ConnectionString returns an explicit connection string for a running
// Azurite. If the environment variable DURABLE_TEST_STORAGE is set its value
// is returned as-is. Otherwise the first call starts one Azurite for this
// test binary (on free ports, data in a temporary directory on disk, killed
// with the test binary); Main stops it. If Azurite cannot be started the test
// fails.
func ConnectionString(tb testing.TB) string {
	tb.Helper()
	if cs := os.Getenv(EnvStorage); cs != "" {
		return cs
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.server == nil && shared.err == nil {
		shared.server, shared.err = Start(context.Background(), "")
	}
	if shared.err != nil {
		tb.Fatalf("azuritetest: cannot start Azurite (set %s to use another storage account): %v", EnvStorage, shared.err)
	}
	return shared.server.ConnectionString()
}

// Main runs the tests of m and then stops the Azurite that ConnectionString
// started, if any. Call it from TestMain:
//
//	func TestMain(m *testing.M) { azuritetest.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain that has more to do after the tests: it runs
// them, stops the Azurite that ConnectionString started, if any, and
// returns the exit code.
func Run(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	if shared.server != nil {
		if err := shared.server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		shared.server = nil
	}
	shared.mu.Unlock()
	return code
}

// HubName returns a task hub name unique to this test: "t", up to 24 letters
// and digits of the test name, and 8 random lowercase letters and digits. It
// satisfies the task hub rules (letters and digits, starts with a letter,
// 3..45 characters).
func HubName(tb testing.TB) string {
	tb.Helper()
	var b strings.Builder
	b.WriteByte('t')
	for _, r := range tb.Name() {
		if b.Len() >= 25 {
			break
		}
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var random [8]byte
	if _, err := rand.Read(random[:]); err != nil {
		tb.Fatalf("azuritetest: random hub name: %v", err)
	}
	for _, c := range random {
		b.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return b.String()
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
