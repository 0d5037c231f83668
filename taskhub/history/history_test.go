package history

import (
	"strings"
	"testing"
	"time"
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

func TestStorageTime(t *testing.T) {
	jst := time.FixedZone("JST", 9*3600)
	tests := []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{"sub-tick digits are cut", time.Date(2024, 3, 4, 5, 6, 7, 123456789, time.UTC), time.Date(2024, 3, 4, 5, 6, 7, 123456700, time.UTC)},
		{"truncated, not rounded", time.Date(2024, 3, 4, 5, 6, 7, 99, time.UTC), time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)},
		{"whole tick unchanged", time.Date(2024, 3, 4, 5, 6, 7, 100, time.UTC), time.Date(2024, 3, 4, 5, 6, 7, 100, time.UTC)},
		{"other location to UTC", time.Date(2024, 3, 4, 14, 6, 7, 555, jst), time.Date(2024, 3, 4, 5, 6, 7, 500, time.UTC)},
		{"before 1970", time.Date(1601, 1, 1, 0, 0, 0, 151, time.UTC), time.Date(1601, 1, 1, 0, 0, 0, 100, time.UTC)},
		{"zero stays zero", time.Time{}, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := StorageTime(tc.in)
			// == and not Equal: the location and the absence of a monotonic
			// reading matter to code that compares or prints the value.
			if got != tc.want {
				t.Fatalf("StorageTime(%s) = %s, want %s", tc.in.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano), tc.want.Format(time.RFC3339Nano))
			}
			if StorageTime(got) != got {
				t.Fatalf("StorageTime is not idempotent at %s", got)
			}
		})
	}
	// A wall-clock reading loses its monotonic part, so == holds with a
	// value parsed back from storage.
	now := time.Now()
	back, err := time.Parse(time.RFC3339Nano, StorageTime(now).Format(time.RFC3339Nano))
	if err != nil {
		t.Fatal(err)
	}
	if got := StorageTime(now); got != back.UTC() {
		t.Fatalf("StorageTime(now) = %#v, parsed back %#v", got, back.UTC())
	}
}

func TestNewEventStampsStorageTime(t *testing.T) {
	at := time.Date(2024, 3, 4, 14, 6, 7, 123456789, time.FixedZone("JST", 9*3600))
	ev := NewEvent(OrchestratorStarted, at)
	if want := time.Date(2024, 3, 4, 5, 6, 7, 123456700, time.UTC); ev.Timestamp != want || ev.EventID != -1 {
		t.Fatalf("NewEvent = %+v, want Timestamp %s and EventID -1", ev, want)
	}
}
