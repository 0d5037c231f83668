package hostemulator

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Timestamp layouts of the host's JSON (Newtonsoft) output.
const (
	// layoutOffset is a DateTimeOffset after the host's round trip
	// (reference 2.3 step 3): no fractional seconds, explicit offset.
	layoutOffset = "2006-01-02T15:04:05-07:00"
	// layoutUtcNow is sys.UtcNow: 7 fractional digits and Z.
	layoutUtcNow = "2006-01-02T15:04:05.0000000Z"
	// layoutDateTimeLocal is a local-kind DateTime inside an object
	// (TimerInfo.ScheduleStatus): trailing zero digits trimmed, offset.
	layoutDateTimeLocal = "2006-01-02T15:04:05.9999999-07:00"
)

// encodeValue encodes one Data/Metadata value the way the host's
// GetHttpScriptInvocationContextValue does (reference 2.3):
//
//   - []byte: base64 string;
//   - time.Time: DateTimeOffset string without fractional seconds;
//   - anything serialising to a JSON object: that object, nested;
//   - anything else (string, number, bool, nil, array): its JSON text
//     carried as a JSON string, so "hello" becomes "\"hello\"" and 1 "1".
func encodeValue(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case []byte:
		return marshal(base64.StdEncoding.EncodeToString(x))
	case time.Time:
		return marshal(x.Format(layoutOffset))
	case json.RawMessage:
		var buf bytes.Buffer
		if err := json.Compact(&buf, x); err != nil {
			return nil, fmt.Errorf("encode value: %w", err)
		}
		if bytes.HasPrefix(buf.Bytes(), []byte("{")) {
			return buf.Bytes(), nil
		}
		return marshal(buf.String())
	}
	text, err := marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode value: %w", err)
	}
	if bytes.HasPrefix(text, []byte("{")) {
		return text, nil
	}
	return marshal(string(text))
}

// marshal encodes JSON without HTML escaping, like Newtonsoft.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// foldMap is an insertion-ordered map with case-insensitive keys whose
// overwrites keep the first spelling of a key, like a .NET dictionary with
// StringComparer.OrdinalIgnoreCase.
type foldMap struct {
	keys []string
	vals map[string]any // by lower-case key
}

func newFoldMap() *foldMap { return &foldMap{vals: map[string]any{}} }

func (m *foldMap) set(key string, v any) {
	lk := strings.ToLower(key)
	if _, ok := m.vals[lk]; !ok {
		m.keys = append(m.keys, key)
	}
	m.vals[lk] = v
}

func (m *foldMap) delete(key string) {
	lk := strings.ToLower(key)
	if _, ok := m.vals[lk]; !ok {
		return
	}
	delete(m.vals, lk)
	for i, k := range m.keys {
		if strings.ToLower(k) == lk {
			m.keys = append(m.keys[:i], m.keys[i+1:]...)
			break
		}
	}
}

// MarshalJSON writes the entries in insertion order.
func (m *foldMap) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range m.keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, err := marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := marshal(m.vals[strings.ToLower(k)])
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(vb)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// encodeMetadata applies the host's Metadata rules (reference 2.2): keys
// ending in "trigger" and null values are dropped, every value is encoded
// with encodeValue, and sys is added.
func encodeMetadata(m *foldMap, functionName string) (*foldMap, error) {
	out := newFoldMap()
	for _, k := range m.keys {
		v := m.vals[strings.ToLower(k)]
		if v == nil || strings.HasSuffix(strings.ToLower(k), "trigger") {
			continue
		}
		enc, err := encodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("metadata %q: %w", k, err)
		}
		out.set(k, enc)
	}
	out.set("sys", map[string]string{
		"MethodName": functionName,
		"UtcNow":     time.Now().UTC().Format(layoutUtcNow),
		"RandGuid":   newGUID(),
	})
	return out, nil
}

// promoteJSON adds the top-level properties of a JSON object text to m
// (reference 2.4): arrays are skipped, objects stay objects, other values
// become their .NET ToString() text, and same-named keys are overwritten.
func promoteJSON(m *foldMap, text string) {
	trimmed := strings.TrimSpace(text)
	if !strings.HasPrefix(trimmed, "{") {
		return
	}
	dec := json.NewDecoder(strings.NewReader(trimmed))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return
	}
	type prop struct {
		key string
		val json.RawMessage
	}
	var props []prop
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return
		}
		props = append(props, prop{key, val})
	}
	for _, p := range props {
		switch {
		case len(p.val) == 0 || p.val[0] == '[':
		case p.val[0] == '{':
			m.set(p.key, p.val)
		case string(p.val) == "null":
			m.set(p.key, nil)
		case string(p.val) == "true":
			m.set(p.key, "True")
		case string(p.val) == "false":
			m.set(p.key, "False")
		default:
			var s string
			if json.Unmarshal(p.val, &s) == nil {
				m.set(p.key, s)
			} else {
				m.set(p.key, string(p.val))
			}
		}
	}
}

// isDotNetBase64 reports whether .NET's Convert.FromBase64String accepts s:
// whitespace is ignored, the rest must be base64 characters with at most two
// '=' at the end and a length that is a multiple of 4. The empty string is
// reported as false (decoding it changes nothing observable).
func isDotNetBase64(s string) bool {
	var n, pad int
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		case c == '=':
			pad++
		case pad > 0:
			return false // data after padding
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
		default:
			return false
		}
		n++
	}
	return n > 0 && n%4 == 0 && pad <= 2
}

// newGUID returns a random (version 4) GUID in the lower-case hyphenated form.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// expandArgument replaces %NAME% tokens with values from env; tokens naming
// unset variables are removed, as the host does (with a warning).
func expandArgument(arg string, env map[string]string, warn func(name string)) string {
	var out strings.Builder
	for {
		start := strings.IndexByte(arg, '%')
		if start < 0 {
			break
		}
		end := strings.IndexByte(arg[start+1:], '%')
		if end < 0 {
			break
		}
		end += start + 1
		name := arg[start+1 : end]
		out.WriteString(arg[:start])
		if v, ok := env[name]; ok && name != "" {
			out.WriteString(v)
		} else if name != "" {
			warn(name)
		} else {
			out.WriteString("%%")
		}
		arg = arg[end+1:]
	}
	out.WriteString(arg)
	return out.String()
}

// splitCommandLine splits a command line the way .NET does on Unix for
// ProcessStartInfo.Arguments: whitespace separates arguments, double quotes
// group, and a backslash escapes a double quote.
func splitCommandLine(s string) []string {
	var args []string
	var cur strings.Builder
	inArg, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == '"':
			cur.WriteByte('"')
			inArg = true
			i++
		case c == '"':
			quoted = !quoted
			inArg = true
		case (c == ' ' || c == '\t') && !quoted:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// parseStatusCode reads an http output statusCode: a JSON integer or a string
// holding one.
func parseStatusCode(raw json.RawMessage) (int, error) {
	text := string(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		text = strings.TrimSpace(s)
	}
	code, err := strconv.Atoi(text)
	if err != nil {
		return 0, fmt.Errorf("statusCode %s is not an integer", raw)
	}
	if code < 100 || code > 999 {
		return 0, fmt.Errorf("statusCode %d is out of range", code)
	}
	return code, nil
}
