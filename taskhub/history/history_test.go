package history

import (
	"strings"
	"testing"
)

func TestNewIDFormat(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id := NewID()
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("NewID() = %q, want 32 lowercase hex digits", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}

func TestEndsExecution(t *testing.T) {
	for et := ExecutionStarted; et.Valid(); et++ {
		want := et == ExecutionCompleted || et == ContinueAsNew
		if got := et.EndsExecution(); got != want {
			t.Errorf("%s.EndsExecution() = %v", et, got)
		}
	}
}
