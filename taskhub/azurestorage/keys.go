package azurestorage

import (
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// escapeKey applies Durable Task's KeySanitation to an instance ID so that it
// can serve as a PartitionKey: '^' becomes "^^", '/' "^0", '\' "^1", '#' "^2",
// '?' "^3", and control characters (U+0000..U+001F, U+007F..U+009F) become
// '^' followed by U+00C0 plus their value.
func escapeKey(id string) string {
	if !strings.ContainsFunc(id, needsEscape) {
		return id
	}
	var b strings.Builder
	b.Grow(len(id) + 8)
	for _, r := range id {
		switch {
		case r == '^':
			b.WriteString("^^")
		case r == '/':
			b.WriteString("^0")
		case r == '\\':
			b.WriteString("^1")
		case r == '#':
			b.WriteString("^2")
		case r == '?':
			b.WriteString("^3")
		case isControl(r):
			b.WriteByte('^')
			b.WriteRune(0xC0 + r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// unescapeKey reverses escapeKey.
func unescapeKey(key string) (string, error) {
	if !strings.Contains(key, "^") {
		return key, nil
	}
	var b strings.Builder
	b.Grow(len(key))
	for i := 0; i < len(key); {
		if key[i] != '^' {
			r, n := utf8.DecodeRuneInString(key[i:])
			b.WriteRune(r)
			i += n
			continue
		}
		if i+1 >= len(key) {
			return "", fmt.Errorf("azurestorage: key %q ends with a lone '^'", key)
		}
		r, n := utf8.DecodeRuneInString(key[i+1:])
		switch {
		case r == '^':
			b.WriteByte('^')
		case r == '0':
			b.WriteByte('/')
		case r == '1':
			b.WriteByte('\\')
		case r == '2':
			b.WriteByte('#')
		case r == '3':
			b.WriteByte('?')
		case isControl(r - 0xC0):
			b.WriteRune(r - 0xC0)
		default:
			return "", fmt.Errorf("azurestorage: key %q has an unknown escape ^%c", key, r)
		}
		i += 1 + n
	}
	return b.String(), nil
}

func needsEscape(r rune) bool {
	return r == '^' || r == '/' || r == '\\' || r == '#' || r == '?' || isControl(r)
}

func isControl(r rune) bool { return r >= 0 && r <= 0x1F || r >= 0x7F && r <= 0x9F }

// rowKey formats a history position as Durable Task does: 16 uppercase hex
// digits.
func rowKey(position int) string { return fmt.Sprintf("%016X", position) }

// sentinelRowKey is the RowKey of the row that fences history writes.
const sentinelRowKey = "sentinel"

// maxKeyUnits is the longest PartitionKey or RowKey Azure accepts, in UTF-16
// code units (1 KiB).
const maxKeyUnits = 512

// partitionKeyFor validates an instance ID and returns its escaped
// PartitionKey.
func partitionKeyFor(instanceID string) (string, error) {
	if instanceID == "" {
		return "", fmt.Errorf("azurestorage: empty instance ID")
	}
	if !utf8.ValidString(instanceID) {
		return "", fmt.Errorf("azurestorage: instance ID %q is not valid UTF-8", instanceID)
	}
	pk := escapeKey(instanceID)
	if n := utf16Len(pk); n > maxKeyUnits {
		return "", fmt.Errorf("azurestorage: instance ID is too long: %d UTF-16 code units after escaping, the table key limit is %d", n, maxKeyUnits)
	}
	return pk, nil
}

// utf16Len returns the length of s in UTF-16 code units, the measure Azure
// Table storage uses for string sizes.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// odataString quotes s as an OData string literal.
func odataString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// validateHubName checks the Durable Functions task hub rule: 3..45 ASCII
// letters and digits, starting with a letter.
func validateHubName(name string) error {
	if len(name) < 3 || len(name) > 45 {
		return fmt.Errorf("azurestorage: task hub name %q must have 3 to 45 characters", name)
	}
	for i, c := range []byte(name) {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter {
			return fmt.Errorf("azurestorage: task hub name %q must start with a letter", name)
		}
		if !letter && !(c >= '0' && c <= '9') {
			return fmt.Errorf("azurestorage: task hub name %q may contain only letters and digits", name)
		}
	}
	return nil
}

// TableKey returns the PartitionKey of instanceID's rows in the History and
// Instances tables (the escaped ID), for tools that read those tables
// directly; it fails on an ID the tables cannot hold.
func TableKey(instanceID string) (string, error) { return partitionKeyFor(instanceID) }
