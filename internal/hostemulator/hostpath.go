package hostemulator

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"
)

// The Functions host runs on ASP.NET Core and Kestrel, which hand it the
// request path decoded once; everything the host sends on (the routing, the
// route parameters, Data.req.Url, the forwarded URL) is derived from that
// decoded path. This file reproduces those steps (reference custom-handler
// 2.5 and 4.1, from Kestrel's UrlDecoder and PathNormalizer and ASP.NET's
// PathString).

// errNullInPath: Kestrel refuses a path with an escaped NUL (400).
var errNullInPath = errors.New("the path contains null characters")

// hostPath is the request path as the host holds it (HttpRequest.Path):
// every %XX escape decoded once, except %2F, which stays escaped, and
// escapes that do not form valid UTF-8, which stay as they are; then the
// dot segments are removed.
func hostPath(raw string) (string, error) {
	var out strings.Builder
	for i := 0; i < len(raw); {
		if raw[i] != '%' {
			out.WriteByte(raw[i])
			i++
			continue
		}
		b, n, err := decodeEscapedRune(raw[i:])
		if err != nil {
			return "", err
		}
		if b == "" {
			out.WriteByte('%') // not decodable here: kept, the rest is read as text
			i++
			continue
		}
		out.WriteString(b)
		i += n
	}
	if !utf8.ValidString(out.String()) {
		return "", errors.New("the request target is not valid UTF-8")
	}
	return removeDotSegments(out.String()), nil
}

// escapedByte reads a %XX escape at the start of s; ok is false when s does
// not start with one or it is %2F, which Kestrel leaves escaped.
func escapedByte(s string) (byte, bool) {
	if len(s) < 3 || s[0] != '%' {
		return 0, false
	}
	hi, ok1 := unhex(s[1])
	lo, ok2 := unhex(s[2])
	if !ok1 || !ok2 {
		return 0, false
	}
	b := hi<<4 | lo
	return b, b != '/'
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeEscapedRune decodes the escapes at the start of s that form one
// UTF-8 character, and returns it and how many bytes of s it used. When
// they do not form one it returns "": Kestrel then copies the escapes it
// read as they are, and the caller copies just the '%' and reads on, which
// comes to the same text (the escapes after a lead byte are continuation
// bytes, which cannot start a character when read again).
func decodeEscapedRune(s string) (string, int, error) {
	b1, ok := escapedByte(s)
	if !ok {
		return "", 0, nil
	}
	if b1 == 0 {
		return "", 0, errNullInPath
	}
	if b1 < 0x80 {
		return string(rune(b1)), 3, nil
	}
	var size int
	switch {
	case b1&0xE0 == 0xC0:
		size = 2
	case b1&0xF0 == 0xE0:
		size = 3
	case b1&0xF8 == 0xF0:
		size = 4
	default:
		return "", 0, nil
	}
	seq := []byte{b1}
	for k := 1; k < size; k++ {
		b, ok := escapedByte(s[3*k:])
		if !ok || b&0xC0 != 0x80 {
			return "", 0, nil
		}
		seq = append(seq, b)
	}
	// utf8 rejects what Kestrel rejects: overlong forms, surrogates and
	// values above U+10FFFF.
	if r, n := utf8.DecodeRune(seq); r == utf8.RuneError || n != size {
		return "", 0, nil
	}
	return string(seq), 3 * size, nil
}

// removeDotSegments drops "." and ".." segments (RFC 3986 5.2.4), as
// Kestrel does after decoding.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")
	var out []string
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	if len(out) == 1 && out[0] == "" {
		return "/"
	}
	return strings.Join(out, "/")
}

// validPathChar reports the characters ASP.NET's PathString leaves as they
// are in its URI form: RFC 3986 pchar and '/'.
func validPathChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!$&'()*+,-./:;=@_~", c) >= 0
}

// pathURIComponent renders a decoded host path the way PathString's
// ToString does (it goes into Data.req.Url): characters that are not
// valid in a path are escaped, while '%' followed by two hex digits is
// kept as it is (so a decoded "%41" is sent as "%41").
func pathURIComponent(p string) string {
	var out strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case validPathChar(c):
			out.WriteByte(c)
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			out.WriteString(p[i : i+3])
			i += 2
		default:
			out.WriteByte('%')
			out.WriteByte(upperHex[c>>4])
			out.WriteByte(upperHex[c&15])
		}
	}
	return out.String()
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	_, ok := unhex(c)
	return ok
}

// forwardedPath is the path of a forwarded request (enableForwardingHttpRequest):
// the host passes pathURIComponent's form through System.Uri, which
// decodes escapes of unreserved characters (letters, digits, - . _ ~).
func forwardedPath(p string) string {
	s := pathURIComponent(p)
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if b, ok := escapedByte(s[i:]); ok && isUnreserved(b) {
				out.WriteByte(b)
				i += 2
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

func isUnreserved(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c == '-' || c == '.' || c == '_' || c == '~'
}

// routingPath escapes each segment of a decoded host path, so that
// handler.Router (which decodes each segment once) sees the host's values.
func routingPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
