package durabletest_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/durabletest"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// versionOf is a child that reports its version, and asks a grandchild
// (which names no version) for its own.
var versionOf = durable.NewOrchestrator("VersionOf", func(ctx *durable.Context, depth int) (string, error) {
	if depth == 0 {
		return ctx.Version(), nil
	}
	below, err := durable.CallSubOrchestrator[string](ctx, "VersionOf", depth-1).Await()
	return ctx.Version() + ">" + below, err
})

// versioned branches on its version, as code that changed does: an
// instance started at version 1 keeps the old path. It continues as new
// once, then reports the versions it and its children see.
var versioned = durable.NewOrchestrator("Versioned", versionedCode)

func versionedCode(ctx *durable.Context, round int) (string, error) {
	if round == 0 {
		return "", ctx.ContinueAsNew(1)
	}
	path := "new path"
	if ctx.Version() == "1" {
		path = "old path"
	}
	inherited, err := versionOf.Call(ctx, 1).Await()
	if err != nil {
		return "", err
	}
	pinned, err := versionOf.Call(ctx, 1, durable.WithVersion("1")).Await()
	if err != nil {
		return "", err
	}
	oldest, err := versionOf.Call(ctx, 0, durable.WithVersion("")).Await()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: version %q, children %q %q %q", path, ctx.Version(), inherited, pinned, oldest), nil
}

// TestVersioning: the Version option sets ctx.Version() and
// ExecutionStarted.Version; ContinueAsNew keeps it; a sub-orchestration
// inherits its parent's version unless the call names one with
// WithVersion, and passes that on to its own children.
func TestVersioning(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    string
	}{
		{"1", `old path: version "1", children "1>1" "1>1" ""`},
		{"2", `new path: version "2", children "2>2" "1>1" ""`},
		{"", `new path: version "", children ">" "1>1" ""`},
		{"3.0.1-beta", `new path: version "3.0.1-beta", children "3.0.1-beta>3.0.1-beta" "1>1" ""`},
	} {
		t.Run(fmt.Sprintf("%q", tc.version), func(t *testing.T) {
			res := durabletest.MustRun(t, durabletest.New(versionOf), versioned, 0, durabletest.Version(tc.version))
			if res.Output != tc.want {
				t.Fatalf("output\n got %s\nwant %s", res.Output, tc.want)
			}
			// Both executions start at the version, as recorded.
			if len(res.Executions) != 2 {
				t.Fatalf("%d executions, want 2", len(res.Executions))
			}
			for i, x := range res.Executions {
				if v := startedVersion(t, x.History); v != tc.version {
					t.Errorf("execution %d: ExecutionStarted.Version %q, want %q", i, v, tc.version)
				}
			}
			if res.Version != tc.version {
				t.Errorf("instance version %q", res.Version)
			}
			// Each call records the child's version, and each child's
			// history starts with it; grandchildren inherit their parent's.
			var created []string
			for _, ev := range res.History {
				if ev.Type == history.SubOrchestrationInstanceCreated {
					created = append(created, ev.Version)
				}
			}
			wantChildren := []string{tc.version, "1", ""}
			if fmt.Sprintf("%q", created) != fmt.Sprintf("%q", wantChildren) {
				t.Errorf("SubOrchestrationInstanceCreated versions %q, want %q", created, wantChildren)
			}
			for i, c := range res.Children {
				if v := startedVersion(t, c.History); v != wantChildren[i] || c.Version != v {
					t.Errorf("child %s: ExecutionStarted.Version %q (instance %q), want %q", c.ID, v, c.Version, wantChildren[i])
				}
				for _, g := range c.Children {
					if v := startedVersion(t, g.History); v != wantChildren[i] {
						t.Errorf("grandchild %s: version %q, want %q", g.ID, v, wantChildren[i])
					}
				}
			}
		})
	}
}

// startedVersion returns the version of the history's ExecutionStarted.
func startedVersion(t *testing.T, h []history.Event) string {
	t.Helper()
	for _, ev := range h {
		if ev.Type == history.ExecutionStarted {
			return ev.Version
		}
	}
	t.Fatalf("no ExecutionStarted in\n%s", durabletest.FormatHistory(h))
	return ""
}

// TestVersionGateKeepsOldHistoriesValid: newer code that changes what
// version 2 does, behind a version check, still replays the histories of
// version 1 instances, and the determinism check catches the change for
// version 2 ones.
func TestVersionGateKeepsOldHistoriesValid(t *testing.T) {
	newer := durable.NewOrchestrator("Versioned", func(ctx *durable.Context, round int) (string, error) {
		if round == 1 && ctx.Version() != "1" {
			if _, err := versionOf.Call(ctx, 0).Await(); err != nil { // new in this code
				return "", err
			}
		}
		return versionedCode(ctx, round)
	})
	reg := durable.NewRegistry()
	if err := reg.Add(newer, versionOf); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		version string
		valid   bool
	}{{"1", true}, {"2", false}} {
		res := durabletest.MustRun(t, durabletest.New(versionOf), versioned, 0, durabletest.Version(tc.version))
		err := durabletest.Check(reg, res.History)
		var de *durabletest.DeterminismError
		if tc.valid && err != nil || !tc.valid && !errors.As(err, &de) {
			t.Fatalf("version %q: the newer code against the old history: %v", tc.version, err)
		}
		t.Logf("version %q: %v", tc.version, err)
	}
}

// upgrading is an eternal orchestration that moves itself to version 2 by
// ContinueAsNew: its version-1 path upgrades, its version-2 path records
// the version it runs at and completes after two more rounds, keeping
// the version.
var upgrading = durable.NewOrchestrator("Upgrading", func(ctx *durable.Context, seen []string) ([]string, error) {
	seen = append(seen, ctx.Version())
	switch {
	case ctx.Version() == "1":
		return nil, ctx.ContinueAsNew(seen, durable.WithNewVersion("2"))
	case len(seen) < 3:
		return nil, ctx.ContinueAsNew(seen)
	}
	return seen, nil
})

// TestContinueAsNewWithNewVersion: a ContinueAsNew with WithNewVersion
// starts the next execution at that version (its ExecutionStarted.Version
// and ctx.Version()); later ones keep it, and the instance reports the
// last execution's version.
func TestContinueAsNewWithNewVersion(t *testing.T) {
	res := durabletest.MustRun(t, durabletest.New(), upgrading, []string{}, durabletest.Version("1"))
	if fmt.Sprint(res.Output) != "[1 2 2]" {
		t.Fatalf("output %q, want the versions 1, 2, 2", res.Output)
	}
	want := []string{"1", "2", "2"}
	if len(res.Executions) != len(want) {
		t.Fatalf("%d executions, want %d", len(res.Executions), len(want))
	}
	for i, x := range res.Executions {
		if v := startedVersion(t, x.History); v != want[i] || x.Version != want[i] {
			t.Errorf("execution %d: ExecutionStarted.Version %q, Execution.Version %q; want %q", i, v, x.Version, want[i])
		}
	}
	if res.Version != "2" || startedVersion(t, res.History) != "2" {
		t.Errorf("instance version %q, last history's %q; want 2", res.Version, startedVersion(t, res.History))
	}
}

// TestCheckContinueAsNewFromStorage: the determinism check accepts an
// execution that continued as new at a new version as storage returns it,
// without the next version in its ContinueAsNew event.
func TestCheckContinueAsNewFromStorage(t *testing.T) {
	res := durabletest.MustRun(t, durabletest.New(), upgrading, []string{}, durabletest.Version("1"))
	stored := append([]history.Event(nil), res.Executions[0].History...)
	found := false
	for i := range stored {
		if stored[i].Type == history.ContinueAsNew {
			if stored[i].Version != "2" {
				t.Errorf("the harness's ContinueAsNew names version %q, want 2", stored[i].Version)
			}
			stored[i].Version, found = "", true
		}
	}
	if !found {
		t.Fatalf("no ContinueAsNew in\n%s", durabletest.FormatHistory(stored))
	}
	reg := durable.NewRegistry()
	if err := reg.Add(upgrading); err != nil {
		t.Fatal(err)
	}
	if err := durabletest.Check(reg, stored); err != nil {
		t.Errorf("Check on the stored form: %v", err)
	}
}
