package client

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateInstanceID(t *testing.T) {
	tests := []struct {
		id      string
		ok      bool
		mention string
	}{
		{"abc", true, ""},
		{"order-42 (retry)", true, ""},
		{strings.Repeat("x", 256), true, ""},
		{strings.Repeat("é", 256), true, ""},
		{"", false, "empty"},
		{strings.Repeat("x", 257), false, "257 characters"},
		{"@counter@1", false, "'@'"},
		{"a/b", false, `'/'`},
		{`a\b`, false, `'\\'`},
		{"a#b", false, `'#'`},
		{"a?b", false, `'?'`},
		{"a\x00b", false, "U+0000"},
		{"a\nb", false, "U+000A"},
		{"a\u0085b", false, "U+0085"},
		{"\xff", false, "not valid UTF-8 (byte 0xff at position 0)"},
		{"ok\xc3\x28", false, "byte 0xc3 at position 2"},
		{"\xed\xa0\x80", false, "not valid UTF-8"}, // an encoded surrogate
		{"pct%41", true, ""},
		{"a%2Fb", true, ""},
	}
	for _, tc := range tests {
		err := ValidateInstanceID(tc.id)
		if tc.ok {
			if err != nil {
				t.Errorf("%q: unexpected error %v", tc.id, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidInstanceID) {
			t.Errorf("%q: error %v is not ErrInvalidInstanceID", tc.id, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%q: error %q does not mention %s", tc.id, err, tc.mention)
		}
	}
}
