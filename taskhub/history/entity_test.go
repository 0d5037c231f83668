package history

import "testing"

func TestEntityID(t *testing.T) {
	for _, tc := range []struct {
		instanceID string
		want       EntityID
		ok         bool
	}{
		{"@counter@c1", EntityID{"counter", "c1"}, true},
		{"@Counter@Key@With@Ats", EntityID{"counter", "Key@With@Ats"}, true},
		{"@counter@", EntityID{"counter", ""}, true},
		{"counter@c1", EntityID{}, false},
		{"@@c1", EntityID{}, false},
		{"@counter", EntityID{}, false},
		{"", EntityID{}, false},
	} {
		got, ok := ParseEntityID(tc.instanceID)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseEntityID(%q) = %+v, %v; want %+v, %v", tc.instanceID, got, ok, tc.want, tc.ok)
		}
		if ok && NewEntityID(got.Name, got.Key).String() != "@"+got.Name+"@"+got.Key {
			t.Errorf("%+v does not print back as its instance ID", got)
		}
	}
	if id := NewEntityID("Counter", "K"); id.String() != "@counter@K" {
		t.Errorf("NewEntityID(Counter, K) = %s, want @counter@K", id)
	}
}
