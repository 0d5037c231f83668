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
