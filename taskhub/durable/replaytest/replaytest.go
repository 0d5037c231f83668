package replaytest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/internal/replay"
)

// Option tunes Check.
type Option func(*config)

type config struct {
	ignoreInputs bool
	ignoreOutput bool
}

// IgnoreInputs compares calls by kind and name only, as the runtime's own
// determinism check does. By default Check also requires each call's input
// to equal (as JSON) the input history records for it, because the code
// would otherwise be handed the result recorded for another input.
func IgnoreInputs() Option { return func(c *config) { c.ignoreInputs = true } }

// IgnoreOutput accepts a Completed orchestration whatever its output. By
// default the output must equal (as JSON) the recorded one.
func IgnoreOutput() Option { return func(c *config) { c.ignoreOutput = true } }

// Check replays an exported instance status (the body of
// GET .../instances/{id}?showHistory=true&showHistoryOutput=true) against
// the orchestrator registered in reg under the export's name. It returns
// nil if the code makes the same calls in the same order and reaches the
// recorded outcome, a *DivergenceError describing the first divergence, or
// an error wrapping ErrBadExport or ErrNotRegistered when it cannot replay.
//
// Activities are not run: the code receives the results, failures, timer
// firings and events that history records, in the recorded order.
func Check(reg *durable.Registry, exported []byte, opts ...Option) error {
	if reg == nil {
		return errors.New("replaytest: nil registry")
	}
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	x, err := parseExport(exported)
	if err != nil {
		return err
	}
	fn, ok := replay.LookupOrchestrator(reg, x.name)
	if !ok {
		return fmt.Errorf("%w: %q (registered: %v)", ErrNotRegistered, x.name, reg.OrchestratorNames())
	}
	return (&checker{x: x, fn: fn, cfg: cfg}).check()
}

// CheckFile is Check on the contents of the file at path, typically an
// export saved under testdata. Errors are prefixed with the path.
func CheckFile(reg *durable.Registry, path string, opts ...Option) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("replaytest: %w", err)
	}
	if err := Check(reg, data, opts...); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// CheckFiles runs CheckFile as a subtest, named after the file, for every
// file matching the glob pattern (such as "testdata/*.json"), and reports
// each divergence as a test error. It fails the test if nothing matches.
func CheckFiles(t *testing.T, reg *durable.Registry, pattern string, opts ...Option) {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatalf("replaytest: %v", err)
	}
	if len(paths) == 0 {
		t.Fatalf("replaytest: no export matches %s", pattern)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if err := CheckFile(reg, path, opts...); err != nil {
				t.Error(err)
			}
		})
	}
}
