package durablecheck_test

import (
	"reflect"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/durablecheck"
	"golang.org/x/tools/go/analysis/analysistest"
)

// TestAnalyzer checks every rule, the escape hatch and the cases that must
// not be reported against the // want comments of the testdata packages
// (one load for all of them: loading the standard library from source is
// the test's main cost).
func TestAnalyzer(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), durablecheck.Analyzer,
		"clock", "random", "concurrency", "maps", "io", "helpers", "hatch", "clean",
		"github.com/go-durable/durablefunctions/taskhub/durable/durablelib")
}

// TestNamesMatchTheRealPackage keeps the testdata stand-in and the
// analyzer's names in step with the real programming model.
func TestNamesMatchTheRealPackage(t *testing.T) {
	const want = "github.com/go-durable/durablefunctions/taskhub/durable"
	if got := reflect.TypeFor[durable.Context]().PkgPath(); got != want {
		t.Fatalf("durable.Context is in %q, the analyzer looks for %q", got, want)
	}
	if got := reflect.TypeFor[durable.Context]().Name(); got != "Context" {
		t.Fatalf("durable.Context is named %q", got)
	}
	// The analyzer recognises these by name; they must keep their shapes.
	var _ func(string, func(*durable.Context, int) (int, error)) *durable.Orchestrator[int, int] = durable.NewOrchestrator[int, int]
	var _ = durable.NewActivity[int, int]
}
