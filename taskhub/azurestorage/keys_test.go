package azurestorage

import (
	"strings"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/internal/routing"
)

func TestFNV1a32(t *testing.T) {
	tests := []struct {
		id   string
		hash uint32
		p4   int
	}{
		{"", 0x811C9DC5, 1},
		{"a", 0xE40C292C, 0},
		{"abc", 0x1A47E90B, 3},
		{"myinstance", 0xC06A6290, 0},
		{"f71ac761454f41468d9923ac39e9bdbc", 0x6198F775, 1},
	}
	s := &Store{partitions: 4}
	for _, tt := range tests {
		if got := routing.FNV1a32(tt.id); got != tt.hash {
			t.Errorf("routing.FNV1a32(%q) = %#08X, want %#08X", tt.id, got, tt.hash)
		}
		if got := s.PartitionOf(tt.id); got != tt.p4 {
			t.Errorf("PartitionOf(%q) with 4 partitions = %d, want %d", tt.id, got, tt.p4)
		}
	}
}

func TestEscapeKey(t *testing.T) {
	tests := []struct{ id, want string }{
		{"plain-id_1.2", "plain-id_1.2"},
		{"a^b", "a^^b"},
		{"a/b", "a^0b"},
		{`a\b`, "a^1b"},
		{"a#b", "a^2b"},
		{"a?b", "a^3b"},
		{"^/\\#?", "^^^0^1^2^3"},
		{"tab\there", "tab^\u00c9here"},
		{"nul\x00", "nul^\u00c0"},
		{"us\x1f", "us^\u00df"},
		{"del\x7f", "del^\u013f"},
		{"c1\u0080", "c1^\u0140"},
		{"c1\u009f", "c1^\u015f"},
		{"\u00a0nbsp", "\u00a0nbsp"},
		{"ünïcode 🎉", "ünïcode 🎉"},
		{"it's", "it's"},
		{"^0", "^^0"},
	}
	for _, tt := range tests {
		got := escapeKey(tt.id)
		if got != tt.want {
			t.Errorf("escapeKey(%q) = %q, want %q", tt.id, got, tt.want)
		}
		back, err := unescapeKey(got)
		if err != nil || back != tt.id {
			t.Errorf("unescapeKey(%q) = %q, %v; want %q", got, back, err, tt.id)
		}
	}
}

func TestUnescapeKeyRejectsBadEscapes(t *testing.T) {
	for _, key := range []string{"a^", "a^x", "a^\u00e0"} {
		if got, err := unescapeKey(key); err == nil {
			t.Errorf("unescapeKey(%q) = %q, want an error", key, got)
		}
	}
}

func TestRowKey(t *testing.T) {
	tests := []struct {
		pos  int
		want string
	}{
		{0, "0000000000000000"},
		{10, "000000000000000A"},
		{255, "00000000000000FF"},
		{1 << 40, "0000010000000000"},
	}
	for _, tt := range tests {
		if got := rowKey(tt.pos); got != tt.want {
			t.Errorf("rowKey(%d) = %q, want %q", tt.pos, got, tt.want)
		}
	}
	if rowKey(99999) >= sentinelRowKey {
		t.Error("event row keys must sort before the sentinel")
	}
}

func TestPartitionKeyFor(t *testing.T) {
	tests := []struct {
		id      string
		want    string
		wantErr string
	}{
		{"abc", "abc", ""},
		{"a/b", "a^0b", ""},
		{"", "", "empty instance ID"},
		{"bad\xffutf8", "", "not valid UTF-8"},
		{strings.Repeat("x", 512), strings.Repeat("x", 512), ""},
		{strings.Repeat("x", 513), "", "too long"},
		{strings.Repeat("/", 300), "", "too long"},
	}
	for _, tt := range tests {
		got, err := partitionKeyFor(tt.id)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("partitionKeyFor(%.20q) error = %v, want %q", tt.id, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("partitionKeyFor(%.20q) = %.20q, %v", tt.id, got, err)
		}
	}
}

func TestValidateHubName(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string
	}{
		{"abc", ""},
		{"MyHub42", ""},
		{strings.Repeat("a", 45), ""},
		{"ab", "3 to 45"},
		{strings.Repeat("a", 46), "3 to 45"},
		{"1hub", "start with a letter"},
		{"my-hub", "only letters and digits"},
		{"hüb1", "only letters and digits"},
	}
	for _, tt := range tests {
		err := validateHubName(tt.name)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("validateHubName(%q) = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestODataString(t *testing.T) {
	if got, want := odataString("O'Brien's"), "'O''Brien''s'"; got != want {
		t.Errorf("odataString = %s, want %s", got, want)
	}
}

func TestUTF16Len(t *testing.T) {
	tests := []struct {
		s    string
		want int
	}{{"", 0}, {"abc", 3}, {"ü", 1}, {"🎉", 2}, {"a🎉b", 4}}
	for _, tt := range tests {
		if got := utf16Len(tt.s); got != tt.want {
			t.Errorf("utf16Len(%q) = %d, want %d", tt.s, got, tt.want)
		}
	}
}
