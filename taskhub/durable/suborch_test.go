package durable

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

type sumOut struct {
	Sum int `json:"sum"`
}

var childSum = NewOrchestrator("ChildSum", func(ctx *Context, in []int) (sumOut, error) {
	var s sumOut
	for _, n := range in {
		s.Sum += n
	}
	return s, nil
})

func TestSubOrchestrationCreated(t *testing.T) {
	tests := []struct {
		name string
		call func(ctx *Context) []*Task[sumOut]
		want []act
	}{
		{
			name: "typed Call, default instance ID",
			call: func(ctx *Context) []*Task[sumOut] {
				return []*Task[sumOut]{childSum.Call(ctx, []int{1, 2})}
			},
			want: []act{subCreated(0, "ChildSum", `[1,2]`, "exec1:0")},
		},
		{
			name: "CallSubOrchestrator, chosen instance ID",
			call: func(ctx *Context) []*Task[sumOut] {
				return []*Task[sumOut]{CallSubOrchestrator[sumOut](ctx, "ChildSum", []int{3}, WithInstanceID("child-7"))}
			},
			want: []act{subCreated(0, "ChildSum", `[3]`, "child-7")},
		},
		{
			name: "default IDs follow the sequence number",
			call: func(ctx *Context) []*Task[sumOut] {
				hello.Call(ctx, "x")
				return []*Task[sumOut]{
					childSum.Call(ctx, nil),
					CallSubOrchestrator[sumOut](ctx, "ChildSum", []int{1}, WithInstanceID("mine")),
					childSum.Call(ctx, []int{}),
				}
			},
			want: []act{scheduled(0, "Hello", `"x"`), subCreated(1, "ChildSum", `null`, "exec1:1"),
				subCreated(2, "ChildSum", `[1]`, "mine"), subCreated(3, "ChildSum", `[]`, "exec1:3")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orch := NewOrchestrator("Parent", func(ctx *Context, _ any) ([]sumOut, error) {
				var out []sumOut
				for _, tk := range tc.call(ctx) {
					s, err := tk.Await()
					if err != nil {
						return nil, err
					}
					out = append(out, s)
				}
				return out, nil
			})
			d := newDriver(t, orch)
			expectActions(t, "start", d.run(start(t0, "Parent", "")), tc.want...)
			for i, w := range tc.want {
				if w.Type != history.SubOrchestrationInstanceCreated {
					continue
				}
				actions := d.run(ep(t0.Add(time.Second), evSubCompleted(w.ID, `{"sum":`+strconv.Itoa(i)+`}`)))
				if i < len(tc.want)-1 {
					expectActions(t, "child done", actions)
				} else if len(actions) != 1 || actions[0].Type != history.ExecutionCompleted || actions[0].Status != history.StatusCompleted {
					t.Fatalf("final actions = %v", describeActions(actions))
				}
			}
		})
	}
}

func TestSubOrchestrationResult(t *testing.T) {
	var got sumOut
	var gotErr error
	orch := NewOrchestrator("Parent", func(ctx *Context, _ any) (int, error) {
		got, gotErr = childSum.Call(ctx, []int{1, 2, 3}).Await()
		return got.Sum, gotErr
	})
	d := newDriver(t, orch)
	d.run(start(t0, "Parent", ""))
	expectActions(t, "child done", d.run(ep(t0.Add(time.Second), evSubCompleted(0, `{"sum":6}`))), completedWith(1, "6"))
	if gotErr != nil || got.Sum != 6 {
		t.Fatalf("got %+v, %v", got, gotErr)
	}
}

func TestSubOrchestrationFailed(t *testing.T) {
	var gotErr error
	orch := NewOrchestrator("Parent", func(ctx *Context, _ any) (int, error) {
		var s sumOut
		s, gotErr = childSum.Call(ctx, []int{1}).Await()
		return s.Sum, gotErr
	})
	childFailure := history.FailureDetails{
		ErrorType:    "TaskFailedError",
		ErrorMessage: `activity "Hello" (task 0) failed: ActivityError: boom`,
		InnerFailure: &history.FailureDetails{ErrorType: "ActivityError", ErrorMessage: "boom"},
	}
	d := newDriver(t, orch)
	d.run(start(t0, "Parent", ""))
	actions := d.run(ep(t0.Add(time.Second), evSubFailed(0, childFailure)))
	var tf *TaskFailedError
	if !errors.As(gotErr, &tf) {
		t.Fatalf("err = %T %v, want *TaskFailedError", gotErr, gotErr)
	}
	if tf.Kind != "sub-orchestration" || tf.TaskName != "ChildSum" || tf.TaskID != 0 || !reflect.DeepEqual(tf.Failure, childFailure) {
		t.Fatalf("TaskFailedError = %+v", tf)
	}
	if want := `sub-orchestration "ChildSum" (task 0) failed: TaskFailedError: activity "Hello"`; !strings.Contains(gotErr.Error(), want) {
		t.Errorf("message %q lacks %q", gotErr.Error(), want)
	}
	c := actions[len(actions)-1]
	if c.Status != history.StatusFailed || c.Failure.InnerFailure == nil || c.Failure.InnerFailure.ErrorMessage != childFailure.ErrorMessage {
		t.Fatalf("completion = %v", describeActions(actions))
	}
	// A response without FailureDetails falls back to the Reason.
	d2 := newDriver(t, orch)
	d2.run(start(t0, "Parent", ""))
	bare := history.NewEvent(history.SubOrchestrationInstanceFailed, t0)
	bare.TaskScheduledID, bare.Reason = 0, "child crashed"
	d2.run(ep(t0, bare))
	if !errors.As(gotErr, &tf) || tf.Failure.ErrorMessage != "child crashed" {
		t.Fatalf("bare failure: %v", gotErr)
	}
}

func TestSubOrchestrationRetry(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 2, FirstRetryInterval: time.Minute}
	tests := []struct {
		name   string
		opts   []CallOption
		first  string
		second string
	}{
		{"default instance IDs differ per attempt", []CallOption{WithRetry(p)}, "exec1:0", "exec1:2"},
		{"chosen instance ID is reused", []CallOption{WithRetry(p), WithInstanceID("child")}, "child", "child"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orch := NewOrchestrator("Parent", func(ctx *Context, _ any) (int, error) {
				s, err := childSum.Call(ctx, []int{2}, tc.opts...).Await()
				return s.Sum, err
			})
			d := newDriver(t, orch)
			expectActions(t, "start", d.run(start(t0, "Parent", "")), subCreated(0, "ChildSum", `[2]`, tc.first))
			expectActions(t, "failed", d.run(ep(t0.Add(time.Second), evSubFailed(0, fd("child broke")))),
				timerAt(1, t0.Add(time.Second+time.Minute)))
			expectActions(t, "retry", d.run(ep(t0.Add(time.Second+time.Minute), evFired(1, t0.Add(time.Second+time.Minute)))),
				subCreated(2, "ChildSum", `[2]`, tc.second))
			expectActions(t, "done", d.run(ep(t0.Add(2*time.Minute), evSubCompleted(2, `{"sum":2}`))), completedWith(3, "2"))
		})
	}
	t.Run("exhausted", func(t *testing.T) {
		var gotErr error
		orch := NewOrchestrator("Parent", func(ctx *Context, _ any) (int, error) {
			var s sumOut
			s, gotErr = childSum.Call(ctx, []int{2}, WithRetry(p)).Await()
			return s.Sum, gotErr
		})
		d := newDriver(t, orch)
		d.run(start(t0, "Parent", ""))
		d.run(ep(t0, evSubFailed(0, fd("one"))))
		d.run(ep(t0.Add(time.Minute), evFired(1, t0.Add(time.Minute))))
		d.run(ep(t0.Add(time.Minute), evSubFailed(2, fd("two"))))
		var tf *TaskFailedError
		if !errors.As(gotErr, &tf) || tf.Kind != "sub-orchestration" || tf.TaskID != 2 || tf.Failure.ErrorMessage != "two" {
			t.Fatalf("err = %v", gotErr)
		}
		if !d.ex.Done() {
			t.Fatal("not done")
		}
	})
}
