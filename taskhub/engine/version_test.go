package engine_test

import (
	"errors"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/engine"
)

// TestCompareVersions checks Durable Task's comparison rules: empty is
// oldest, System.Version comparison when both parse, else case-insensitive
// string order.
func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{" ", "", 0}, // blank counts as empty
		{"", "1", -1},
		{"1", "", 1},
		{"", "0.0", -1},
		{"1", "2", -1},
		{"2", "1", 1},
		{"1", "1", 0},
		{"10", "9", -1}, // lone numbers are not System.Versions: string order
		{"1.0", "1.0", 0},
		{"1.9", "1.10", -1}, // numeric per component
		{"1.10", "1.9", 1},
		{"2.0", "10.0", -1},
		{"1.0", "1.0.0", -1}, // a missing component is lower than 0
		{"1.0.0.1", "1.0.0", 1},
		{"1.2.3.4", "1.2.3.4", 0},
		{"1.2.3.4.5", "1.2.3.4.6", -1}, // five parts: a string
		{"v1.0", "V1.0", 0},            // case-insensitive
		{"alpha", "Beta", -1},
		{"2025-01-01", "2025-02-01", -1},
		{"1.0", "v1.0", -1}, // one side does not parse: string order ('1' < 'V')
		{"1.-1", "1.0", -1}, // a negative component is not a version: string order
		{"1.2147483648", "1.3", -1},
	}
	for _, tt := range tests {
		if got := engine.CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := engine.CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d (antisymmetry)", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestParseVersionStrategies(t *testing.T) {
	matches := []struct {
		in   string
		want engine.VersionMatch
		ok   bool
	}{
		{"None", engine.MatchNone, true},
		{"strict", engine.MatchStrict, true},
		{"CURRENTOROLDER", engine.MatchCurrentOrOlder, true},
		{" CurrentOrOlder ", engine.MatchCurrentOrOlder, true},
		{"Current", 0, false},
		{"", 0, false},
	}
	for _, tt := range matches {
		got, err := engine.ParseVersionMatch(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseVersionMatch(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, engine.ErrInvalidVersioning) {
			t.Errorf("ParseVersionMatch(%q) = %v, %v; want ErrInvalidVersioning", tt.in, got, err)
		}
	}
	failures := []struct {
		in   string
		want engine.VersionFailure
		ok   bool
	}{
		{"Reject", engine.FailureReject, true},
		{"fail", engine.FailureFail, true},
		{"Abandon", 0, false},
	}
	for _, tt := range failures {
		got, err := engine.ParseVersionFailure(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseVersionFailure(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, engine.ErrInvalidVersioning) {
			t.Errorf("ParseVersionFailure(%q) = %v, %v; want ErrInvalidVersioning", tt.in, got, err)
		}
	}
	mm := &engine.VersionMismatchError{InstanceVersion: "1", WorkerVersion: "2", Match: engine.MatchStrict}
	if !errors.Is(mm, engine.ErrVersionMismatch) || mm.ErrorType() != "VersionMismatch" {
		t.Errorf("VersionMismatchError %v: Is %v, type %q", mm, errors.Is(mm, engine.ErrVersionMismatch), mm.ErrorType())
	}
}
