package azurestorage

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// writeJSONString writes s as a JSON string. Besides what JSON requires it
// escapes U+2028, U+2029, U+FFFE and U+FFFF (the last two are not XML
// characters, and queue messages travel inside XML); invalid UTF-8 becomes
// U+FFFD. HTML characters are left alone.
func writeJSONString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(s[start:i])
			b.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' || r == 0xFFFE || r == 0xFFFF {
			b.WriteString(s[start:i])
			b.WriteString(`\u`)
			b.WriteString(strconv.FormatInt(int64(r), 16))
			i += size
			start = i
			continue
		}
		i += size
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// jsonObject writes one JSON object with members in call order.
type jsonObject struct {
	b     *bytes.Buffer
	empty bool
}

// beginObject starts an object; typeName, when not empty, becomes its first
// member "$type".
func beginObject(b *bytes.Buffer, typeName string) *jsonObject {
	b.WriteByte('{')
	o := &jsonObject{b: b, empty: true}
	if typeName != "" {
		o.str("$type", typeName)
	}
	return o
}

func (o *jsonObject) key(k string) {
	if !o.empty {
		o.b.WriteByte(',')
	}
	o.empty = false
	writeJSONString(o.b, k)
	o.b.WriteByte(':')
}

func (o *jsonObject) end() { o.b.WriteByte('}') }

func (o *jsonObject) str(k, v string) {
	o.key(k)
	writeJSONString(o.b, v)
}

// optStr writes v, or null when v is empty.
func (o *jsonObject) optStr(k, v string) {
	if v == "" {
		o.null(k)
		return
	}
	o.str(k, v)
}

func (o *jsonObject) null(k string) {
	o.key(k)
	o.b.WriteString("null")
}

func (o *jsonObject) int(k string, v int64) {
	o.key(k)
	o.b.WriteString(strconv.FormatInt(v, 10))
}

func (o *jsonObject) bool(k string, v bool) {
	o.key(k)
	o.b.WriteString(strconv.FormatBool(v))
}

func (o *jsonObject) time(k string, t time.Time) {
	o.key(k)
	o.b.WriteString(`"` + formatTime(t) + `"`)
}

// raw writes already-encoded JSON.
func (o *jsonObject) raw(k string, v []byte) {
	o.key(k)
	o.b.Write(v)
}

// stringMap writes a string dictionary without "$type" (Newtonsoft
// materializes string dictionaries without it, and a .NET type name that does
// not resolve on the reader's runtime would break deserialization); null when
// empty. Keys are sorted for stable output.
func (o *jsonObject) stringMap(k string, m map[string]string) {
	if len(m) == 0 {
		o.null(k)
		return
	}
	o.key(k)
	writeStringMap(o.b, m)
}

func writeStringMap(b *bytes.Buffer, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	inner := beginObject(b, "")
	for _, k := range keys {
		inner.str(k, m[k])
	}
	inner.end()
}

// anyValue writes v with encoding/json (used for FailureDetails.Properties).
func (o *jsonObject) anyValue(k string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	o.raw(k, data)
	return nil
}
