package routing

import "testing"

func TestFNV1a32AndPartition(t *testing.T) {
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
	for _, tt := range tests {
		if got := FNV1a32(tt.id); got != tt.hash {
			t.Errorf("FNV1a32(%q) = %#08X, want %#08X", tt.id, got, tt.hash)
		}
		if got := Partition(tt.id, 4); got != tt.p4 {
			t.Errorf("Partition(%q, 4) = %d, want %d", tt.id, got, tt.p4)
		}
		if got := Partition(tt.id, 1); got != 0 {
			t.Errorf("Partition(%q, 1) = %d, want 0", tt.id, got)
		}
	}
}
