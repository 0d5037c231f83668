package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// vscodeTask is the part of a .vscode/tasks.json task the test runs.
type vscodeTask struct {
	Label          string          `json:"label"`
	Type           string          `json:"type"`
	Command        string          `json:"command"`
	Args           []string        `json:"args"`
	IsBackground   bool            `json:"isBackground"`
	DependsOn      json.RawMessage `json:"dependsOn"`      // a label or a list of them
	ProblemMatcher json.RawMessage `json:"problemMatcher"` // a name, a list, or a matcher
}

// backgroundMatcher is a problem matcher's background part.
type backgroundMatcher struct {
	Background struct {
		BeginsPattern string `json:"beginsPattern"`
		EndsPattern   string `json:"endsPattern"`
	} `json:"background"`
}

// TestVSCodeAzuriteTask runs the "azurite: start" task of .vscode/tasks.json
// as VS Code does (its command and arguments as a process, in the
// workspace folder), on free ports: its output matches the task's begin
// and end patterns, so VS Code sees it start and become ready, and
// Azurite then keeps running in the foreground, answering, until the task
// is terminated. The "func: host start" task depends on it.
func TestVSCodeAzuriteTask(t *testing.T) {
	root := moduleRoot(t)
	b, err := os.ReadFile(filepath.Join(root, ".vscode", "tasks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Tasks []vscodeTask `json:"tasks"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatalf(".vscode/tasks.json: %v", err)
	}
	tasks := map[string]vscodeTask{}
	for _, task := range file.Tasks {
		tasks[task.Label] = task
	}
	az, ok := tasks["azurite: start"]
	if !ok || az.Type != "process" || !az.IsBackground {
		t.Fatalf("task azurite: start = %+v, want a background process task", az)
	}
	if host := tasks["func: host start"]; !strings.Contains(string(host.DependsOn), `"azurite: start"`) {
		t.Errorf("func: host start depends on %s, want azurite: start among them", host.DependsOn)
	}
	var m backgroundMatcher
	if err := json.Unmarshal(az.ProblemMatcher, &m); err != nil {
		t.Fatalf("azurite: start's problem matcher %s: %v", az.ProblemMatcher, err)
	}
	begins, err := regexp.Compile(m.Background.BeginsPattern)
	if err != nil || m.Background.BeginsPattern == "" {
		t.Fatalf("beginsPattern %q: %v", m.Background.BeginsPattern, err)
	}
	ends, err := regexp.Compile(m.Background.EndsPattern)
	if err != nil || m.Background.EndsPattern == "" {
		t.Fatalf("endsPattern %q: %v", m.Background.EndsPattern, err)
	}

	data := t.TempDir()
	var args []string
	for _, a := range az.Args {
		args = append(args, strings.ReplaceAll(a, "${workspaceFolder}/.azurite", data))
	}
	ports := make([]string, 3)
	for i := range ports {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		ports[i] = port
	}
	args = append(args, "--blobPort", ports[0], "--queuePort", ports[1], "--tablePort", ports[2])
	cmd := exec.Command(az.Command, args...)
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // Terminate Task
		cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var seen []string
	began, ready := false, false
	deadline := time.After(60 * time.Second)
	for !ready {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the task ended before it was ready; its output:\n%s", strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			began = began || begins.MatchString(l)
			ready = began && ends.MatchString(l)
		case <-deadline:
			t.Fatalf("no line matched the end pattern within 60s; output:\n%s", strings.Join(seen, "\n"))
		}
	}
	go io.Copy(io.Discard, out)
	// Ready, and it stays up: its three services answer, and the process
	// is still running.
	for _, p := range ports {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+p, 5*time.Second)
		if err != nil {
			t.Fatalf("port %s after the task said ready: %v", p, err)
		}
		c.Close()
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the task's process is gone after it became ready: %v", err)
	}
}
