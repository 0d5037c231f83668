package counter_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/enginetest"

	counter "github.com/go-durable/durablefunctions/Counter"
	"github.com/go-durable/durablefunctions/taskhub/backend/memory"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/engine"
)

// startEngine runs the Counter on an engine over the in-memory backend and
// returns the app's client.
func startEngine(t *testing.T) *client.Client {
	t.Helper()
	be, err := memory.New(memory.Options{HubName: "CounterHub"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, c := enginetest.Start(t, engine.Options{Backend: be}, counter.Entity)
	return c
}

type signal struct {
	op    string
	input any
}

// TestCounter: each sequence of signals to a fresh key leaves the state
// want; "get" and a failing operation (an input that is not an int, an
// unknown operation) leave it unchanged. The signals of a sequence go one
// after another into one queue, which the memory backend delivers in order.
func TestCounter(t *testing.T) {
	c := startEngine(t)
	tests := []struct {
		name    string
		signals []signal
		want    int
	}{
		{"add", []signal{{"add", 5}, {"add", 7}}, 12},
		{"add negative", []signal{{"add", 5}, {"add", -8}}, -3},
		{"reset", []signal{{"add", 5}, {"reset", nil}, {"add", 3}}, 3},
		{"get changes nothing", []signal{{"add", 4}, {"get", nil}, {"add", 1}, {"get", nil}}, 5},
		{"bad input fails only its operation", []signal{{"add", 2}, {"add", "x"}, {"add", 2}}, 4},
		{"unknown operation fails only itself", []signal{{"add", 2}, {"double", nil}, {"add", 2}}, 4},
		{"reset of a new counter", []signal{{"reset", nil}}, 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("k%d", i)
			// A last add of a million marks the end: once the state is near
			// it, every signal before it has run.
			const marker = 1_000_000
			for _, s := range append(tc.signals, signal{"add", marker}) {
				if err := c.SignalEntity(context.Background(), counter.Entity.ID(key), s.op, s.input); err != nil {
					t.Fatal(err)
				}
			}
			n := waitFor(t, c, key, func(n int, err error) bool { return err == nil && n > marker/2 })
			if n-marker != tc.want {
				t.Fatalf("state %d, want %d", n-marker, tc.want)
			}
		})
	}
}

// TestCounterDelete: the implicit "delete" removes the state, so reading
// it is ErrNotFound.
func TestCounterDelete(t *testing.T) {
	c := startEngine(t)
	id := counter.Entity.ID("gone")
	if err := c.SignalEntity(context.Background(), id, "add", 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "gone", func(n int, err error) bool { return err == nil && n == 2 })
	if err := c.SignalEntity(context.Background(), id, "delete", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "gone", func(_ int, err error) bool { return errors.Is(err, client.ErrNotFound) })
}

// waitFor polls the counter's state until done accepts it.
func waitFor(t *testing.T, c *client.Client, key string, done func(int, error) bool) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := client.ReadEntity(context.Background(), c, counter.Entity, key)
		if done(n, err) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter %s: state %d, %v", key, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
