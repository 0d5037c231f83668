package durable

import (
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestVersionOfContextAndChildren: Context.Version is the start's version,
// also on replay, and a sub-orchestration gets it unless WithVersion names
// another ("" included).
func TestVersionOfContextAndChildren(t *testing.T) {
	var seen []string
	orch := NewOrchestrator("Parent", func(ctx *Context, _ any) (string, error) {
		seen = append(seen, ctx.Version())
		childSum.Call(ctx, nil, WithInstanceID("inherit"))
		childSum.Call(ctx, nil, WithInstanceID("explicit"), WithVersion("2.0"))
		childSum.Call(ctx, nil, WithInstanceID("empty"), WithVersion(""))
		hello.Call(ctx, "x", WithVersion("9")) // no effect on activities
		return "", nil
	})
	startEvs := start(t0, "Parent", "")
	startEvs[1].Version = "1.5"
	d := newDriver(t, orch)
	actions := d.run(startEvs)
	want := map[string]string{"inherit": "1.5", "explicit": "2.0", "empty": ""}
	got := map[string]string{}
	for _, a := range actions {
		switch a.Type {
		case history.SubOrchestrationInstanceCreated:
			got[a.InstanceID] = a.Version
		case history.TaskScheduled:
			if a.Version != "" {
				t.Errorf("activity call recorded version %q", a.Version)
			}
		}
	}
	for id, v := range want {
		if g, ok := got[id]; !ok || g != v {
			t.Errorf("child %s created with version %q (present %v), want %q", id, g, ok, v)
		}
	}
	// Replayed from its history, the code sees the same version.
	d2 := newDriver(t, orch)
	if err := d2.ex.Replay(d.hist); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != "1.5" || seen[1] != "1.5" {
		t.Errorf("Context.Version seen %q, want 1.5 on the first run and on replay", seen)
	}
}

// TestContinueAsNewVersion: the ContinueAsNew action carries the version
// of the execution it starts: the current one, unless WithNewVersion
// names another ("" included); the input and the carried events are as
// without it.
func TestContinueAsNewVersion(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []ContinueAsNewOption
		want string
	}{
		{"kept", nil, "1.5"},
		{"new", []ContinueAsNewOption{WithNewVersion("2")}, "2"},
		{"empty", []ContinueAsNewOption{WithNewVersion("")}, ""},
		{"last wins", []ContinueAsNewOption{WithNewVersion("2"), KeepUnprocessedEvents(), WithNewVersion("3")}, "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orch := NewOrchestrator("Eternal", func(ctx *Context, n int) (any, error) {
				return nil, ctx.ContinueAsNew(n+1, tc.opts...)
			})
			evs := start(t0, "Eternal", "41")
			evs[1].Version = "1.5"
			d := newDriver(t, orch)
			actions := d.run(evs)
			if len(actions) != 1 || actions[0].Type != history.ContinueAsNew {
				t.Fatalf("actions %+v, want one ContinueAsNew", actions)
			}
			c := actions[0]
			if c.Version != tc.want || c.Result != "42" || c.Status != history.StatusContinuedAsNew {
				t.Errorf("ContinueAsNew: version %q, input %s, status %s; want version %q, input 42", c.Version, c.Result, c.Status, tc.want)
			}
		})
	}
}
