package azurestorage

import (
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestTimeEncodingIsStorageTime pins what the engine relies on for exact
// replay: a time written to a table or a queue message reads back as
// exactly history.StorageTime of what was written.
func TestTimeEncodingIsStorageTime(t *testing.T) {
	jst := time.FixedZone("JST", 9*3600)
	tests := []struct {
		in   time.Time
		text string // what goes on the wire: UTC, at most seven digits
	}{
		{time.Date(2024, 3, 4, 5, 6, 7, 123456789, time.UTC), "2024-03-04T05:06:07.1234567Z"},
		{time.Date(2024, 3, 4, 5, 6, 7, 100, time.UTC), "2024-03-04T05:06:07.0000001Z"},
		{time.Date(2024, 3, 4, 5, 6, 7, 99, time.UTC), "2024-03-04T05:06:07Z"},
		{time.Date(2024, 3, 4, 14, 6, 7, 120000000, jst), "2024-03-04T05:06:07.12Z"},
		{time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC), "1601-01-01T00:00:00Z"},
	}
	for _, tc := range tests {
		text := formatTime(tc.in)
		if text != tc.text {
			t.Errorf("formatTime(%s) = %s, want %s", tc.in.Format(time.RFC3339Nano), text, tc.text)
		}
		back, err := parseTime(text)
		if err != nil {
			t.Fatalf("parseTime(%q): %v", text, err)
		}
		if want := history.StorageTime(tc.in); back != want {
			t.Errorf("%s reads back as %#v, want history.StorageTime = %#v", text, back, want)
		}
	}
	// Times from other writers: more digits than storage keeps are cut the
	// same way; a time without a zone is UTC; an offset is converted.
	for text, want := range map[string]time.Time{
		"2024-03-04T05:06:07.123456789Z":       time.Date(2024, 3, 4, 5, 6, 7, 123456700, time.UTC),
		"2024-03-04T05:06:07.1234567":          time.Date(2024, 3, 4, 5, 6, 7, 123456700, time.UTC),
		"2024-03-04T14:06:07.1234567890+09:00": time.Date(2024, 3, 4, 5, 6, 7, 123456700, time.UTC),
	} {
		got, err := parseTime(text)
		if err != nil || got != want {
			t.Errorf("parseTime(%q) = %#v, %v; want %#v", text, got, err, want)
		}
	}
}
