package durable

// The wire format of durable HTTP: the built-in activity's input and
// output as Durable Functions writes them (DurableHttpRequest,
// DurableHttpResponse, headers as strings or arrays, .NET TimeSpans), and
// the validation of a request. The orchestrator side (CallHTTP, polling,
// retries, the timeout) is in callhttp.go.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalidHTTPRequest is matched (errors.Is) by the error of a CallHTTP
// whose request is not valid; the error says which part is wrong.
var ErrInvalidHTTPRequest = errors.New("durable: invalid HTTP request")

// HTTPHeaders holds HTTP header fields; names are matched
// case-insensitively by Get and Values. In JSON a field with one value is a
// string and one with several an array of strings, as Durable Functions
// writes them.
type HTTPHeaders map[string][]string

// Get returns the first value of the header name (case-insensitive), or "".
func (h HTTPHeaders) Get(name string) string {
	if v := h.Values(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns all values of the header name (case-insensitive): those
// of every entry whose name matches, in sorted name order.
func (h HTTPHeaders) Values(name string) []string {
	var out []string
	for _, k := range h.sortedNames() {
		if strings.EqualFold(k, name) {
			out = append(out, h[k]...)
		}
	}
	return out
}

func (h HTTPHeaders) sortedNames() []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// without returns a copy of h with the header name (case-insensitive)
// removed.
func (h HTTPHeaders) without(name string) HTTPHeaders {
	out := make(HTTPHeaders, len(h))
	for k, v := range h {
		if !strings.EqualFold(k, name) {
			out[k] = append([]string(nil), v...)
		}
	}
	return out
}

// MarshalJSON writes the fields in name order, one value as a string.
func (h HTTPHeaders) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range h.sortedNames() {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(k)
		b.Write(name)
		b.WriteByte(':')
		var val []byte
		if v := h[k]; len(v) == 1 {
			val, _ = json.Marshal(v[0])
		} else {
			if v == nil {
				v = []string{}
			}
			val, _ = json.Marshal(v)
		}
		b.Write(val)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// UnmarshalJSON reads fields whose values are strings or arrays of strings.
func (h *HTTPHeaders) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("HTTP headers: %w", err)
	}
	if raw == nil {
		*h = nil
		return nil
	}
	out := make(HTTPHeaders, len(raw))
	for k, v := range raw {
		var one string
		if err := json.Unmarshal(v, &one); err == nil {
			out[k] = []string{one}
			continue
		}
		var many []string
		if err := json.Unmarshal(v, &many); err != nil {
			return fmt.Errorf("HTTP header %q: want a string or an array of strings, got %s", k, v)
		}
		out[k] = many
	}
	*h = out
	return nil
}

// HTTPResponse is the response of a durable HTTP call. Its JSON is Durable
// Functions' DurableHttpResponse: {"statusCode","headers","content"}.
type HTTPResponse struct {
	StatusCode int         `json:"statusCode"`
	Headers    HTTPHeaders `json:"headers,omitempty"`
	// Body is the response content as text.
	Body string `json:"content"`
}

// Header returns the first value of the response header name
// (case-insensitive), or "".
func (r HTTPResponse) Header(name string) string { return r.Headers.Get(name) }

// HTTPActivityRequest is the input of the built-in activity
// (HTTPActivityName): one HTTP request, in the shape of Durable Functions'
// DurableHttpRequest. Mocks of the activity decode their input into it.
type HTTPActivityRequest struct {
	Method      string       `json:"method"`
	URI         string       `json:"uri"`
	Headers     HTTPHeaders  `json:"headers,omitempty"`
	Content     string       `json:"content,omitempty"`
	TokenSource *TokenSource `json:"tokenSource,omitempty"`
	// AsynchronousPatternEnabled tells whether the orchestrator follows a
	// 202 (informational for the activity).
	AsynchronousPatternEnabled bool `json:"asynchronousPatternEnabled"`
	// Timeout bounds the request, as a .NET TimeSpan ("00:01:30"); "" = no
	// bound of its own.
	Timeout string `json:"timeout,omitempty"`
}

// UnmarshalJSON also accepts the request wrapped in an array of one, as
// the Durable Functions extension records activity inputs.
func (r *HTTPActivityRequest) UnmarshalJSON(data []byte) error {
	type plain HTTPActivityRequest
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "[") {
		var list []plain
		if err := json.Unmarshal(data, &list); err != nil {
			return err
		}
		if len(list) != 1 {
			return fmt.Errorf("durable HTTP activity input: want one request, got an array of %d", len(list))
		}
		*r = HTTPActivityRequest(list[0])
		return nil
	}
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*r = HTTPActivityRequest(p)
	return nil
}

// TimeoutDuration returns the request's own timeout (0 = none).
func (r *HTTPActivityRequest) TimeoutDuration() (time.Duration, error) {
	if r.Timeout == "" {
		return 0, nil
	}
	d, err := parseTimeSpan(r.Timeout)
	if err != nil {
		return 0, invalidHTTP("timeout", "%q is not a TimeSpan such as 00:01:30", r.Timeout)
	}
	return d, nil
}

// httpMethods are the methods durable HTTP supports.
var httpMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

// Validate checks the request: a supported method (upper case), an absolute
// http(s) URL, header names that are tokens and values without control
// characters, UTF-8 content and a well-formed token source and timeout. Its
// error matches ErrInvalidHTTPRequest and names the part that is wrong.
func (r *HTTPActivityRequest) Validate() error {
	if !httpMethods[r.Method] {
		return invalidHTTP("method", "%q is not supported (use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)", r.Method)
	}
	if err := validateURL(r.URI); err != nil {
		return err
	}
	for _, k := range r.Headers.sortedNames() {
		if !validHeaderName(k) {
			return invalidHTTP("header name", "%q is not a valid HTTP header name", k)
		}
		for _, v := range r.Headers[k] {
			if i := strings.IndexFunc(v, func(c rune) bool { return (c < 0x20 && c != '\t') || c == 0x7f }); i >= 0 {
				return invalidHTTP("header "+k, "the value holds control character %U at byte %d (newlines are not allowed in header values)", v[i], i)
			}
			if !utf8.ValidString(v) {
				return invalidHTTP("header "+k, "the value is not valid UTF-8")
			}
		}
	}
	if !utf8.ValidString(r.Content) {
		i := 0
		for i < len(r.Content) {
			c, n := utf8.DecodeRuneInString(r.Content[i:])
			if c == utf8.RuneError && n == 1 {
				break
			}
			i += n
		}
		return invalidHTTP("body", "not UTF-8 text (invalid byte 0x%02x at offset %d); durable HTTP carries text bodies only", r.Content[i], i)
	}
	if ts := r.TokenSource; ts != nil {
		if ts.Kind != TokenSourceManagedIdentity {
			return invalidHTTP("token source", "kind %q is not supported (want %q)", ts.Kind, TokenSourceManagedIdentity)
		}
		if strings.TrimSpace(ts.Resource) == "" {
			return invalidHTTP("token source", "the resource is empty")
		}
	}
	if _, err := r.TimeoutDuration(); err != nil {
		return err
	}
	return nil
}

func validateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return invalidHTTP("URL", "%q does not parse: %v", raw, err)
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return invalidHTTP("URL", "%q is not an absolute http or https URL", raw)
	}
	if u.Host == "" {
		return invalidHTTP("URL", "%q has no host", raw)
	}
	return nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// HTTPRequestError is the error of an invalid durable HTTP request; it
// matches ErrInvalidHTTPRequest.
type HTTPRequestError struct {
	// Part is the part of the request that is wrong ("URL", "method", ...).
	Part string
	// Reason says what is wrong with it.
	Reason string
}

func invalidHTTP(part, format string, args ...any) error {
	return &HTTPRequestError{Part: part, Reason: fmt.Sprintf(format, args...)}
}

// Error implements error.
func (e *HTTPRequestError) Error() string {
	return fmt.Sprintf("durable HTTP request: %s: %s", e.Part, e.Reason)
}

// Is matches ErrInvalidHTTPRequest.
func (e *HTTPRequestError) Is(target error) bool { return target == ErrInvalidHTTPRequest }

// ErrorType implements the ErrorType convention.
func (e *HTTPRequestError) ErrorType() string { return "HTTPRequestError" }

// formatTimeSpan writes d as a .NET TimeSpan: [d.]hh:mm:ss[.fffffff].
func formatTimeSpan(d time.Duration) string {
	ticks := int64(d / 100)
	sign := ""
	if ticks < 0 {
		sign, ticks = "-", -ticks
	}
	const perSecond = int64(time.Second / 100)
	secs := ticks / perSecond
	frac := ticks % perSecond
	days, secs := secs/86400, secs%86400
	s := fmt.Sprintf("%s%02d:%02d:%02d", sign, secs/3600, secs/60%60, secs%60)
	if days > 0 {
		s = fmt.Sprintf("%s%d.%02d:%02d:%02d", sign, days, secs/3600, secs/60%60, secs%60)
	}
	if frac > 0 {
		s += fmt.Sprintf(".%07d", frac)
	}
	return s
}

// parseTimeSpan reads a .NET TimeSpan written as [-][d.]hh:mm:ss[.fffffff].
func parseTimeSpan(s string) (time.Duration, error) {
	bad := fmt.Errorf("durable: %q is not a TimeSpan", s)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, bad
	}
	var days int64
	if d, h, ok := strings.Cut(parts[0], "."); ok {
		n, err := strconv.ParseInt(d, 10, 32)
		if err != nil || n < 0 {
			return 0, bad
		}
		days, parts[0] = n, h
	}
	secPart, fracPart, hasFrac := strings.Cut(parts[2], ".")
	var vals [3]int64
	for i, p := range []string{parts[0], parts[1], secPart} {
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < 0 || (i > 0 && n > 59) || (i == 0 && n > 23) {
			return 0, bad
		}
		vals[i] = n
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(vals[0])*time.Hour + time.Duration(vals[1])*time.Minute + time.Duration(vals[2])*time.Second
	if hasFrac {
		if fracPart == "" || len(fracPart) > 7 {
			return 0, bad
		}
		n, err := strconv.ParseInt((fracPart + "0000000")[:7], 10, 64)
		if err != nil || n < 0 {
			return 0, bad
		}
		d += time.Duration(n) * 100
	}
	if neg {
		d = -d
	}
	return d, nil
}
