package handler

import (
	"strings"
	"testing"
)

func TestResolveSettings(t *testing.T) {
	env := map[string]string{"HUB": "orders", "SUFFIX": "wake"}
	lookup := func(k string) string { return env[k] }
	for _, tc := range []struct{ in, want, wantErr string }{
		{"plain-queue", "plain-queue", ""},
		{"%HUB%-wake", "orders-wake", ""},
		{"%HUB%-%SUFFIX%", "orders-wake", ""},
		{"%MISSING%-wake", "", "names app setting MISSING, which is not set"},
		{"%HUB", "", `"%HUB" has a % without its closing %`},
	} {
		got, err := ResolveSettings(tc.in, lookup)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
