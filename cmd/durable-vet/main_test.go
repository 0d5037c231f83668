package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVetTool builds durable-vet and runs it the way users do, as
// go vet -vettool, on a package with mistakes and on the sample's
// orchestrator, both against the real taskhub/durable package.
func TestVetTool(t *testing.T) {
	tool := filepath.Join(t.TempDir(), "durable-vet")
	if out, err := exec.Command("go", "build", "-o", tool, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	vet := func(pkg string) (string, error) {
		out, err := exec.Command("go", "vet", "-vettool="+tool, pkg).CombinedOutput()
		return string(out), err
	}

	out, err := vet("./testdata/bad")
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("go vet on testdata/bad: want a failing exit, got %v\n%s", err, out)
	}
	for _, want := range []string{
		`bad.go:13:9: time.Now in orchestrator "Stamp": the clock reads differently on every replay; use ctx.CurrentTime()`,
		`bad_test.go:8:2: go statement in orchestrator "Fan"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("go vet output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "in orchestrator"); n != 2 {
		t.Errorf("go vet reported %d findings, want 2 (the silenced line in Quiet stays quiet):\n%s", n, out)
	}

	if out, err := vet("../../Orchestrator"); err != nil {
		t.Errorf("go vet on the sample orchestrator: %v\n%s", err, out)
	}
}
