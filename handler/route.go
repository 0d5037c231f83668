package handler

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// RouteTemplate is a parsed function.json route template, following the
// ASP.NET Core routing rules the Functions host applies:
//
//   - literal segments match case-insensitively;
//   - {name} matches one non-empty path segment;
//   - {name?} is optional and {name=value} has a default; both may only be
//     followed by further optional segments or a catch-all;
//   - {*name} (or {**name}) is a catch-all: it must be the last segment and
//     captures the rest of the path, possibly empty;
//   - parameters may carry constraints, e.g. {id:int}, {slug:minlength(3)}.
//
// The path is split on '/' first and each segment is then percent-decoded
// exactly once, so an escaped slash (%2F) stays inside its segment and
// "%2541" yields "%41". A catch-all value is the rest of the path, each
// segment decoded once and joined with '/' (so there an escaped slash can
// no longer be told from a separator; a function that must tell them apart
// reads Request.EscapedPath). Complex segments mixing literals and
// parameters ("{file}.{ext}") are not supported.
type RouteTemplate struct {
	raw      string
	segments []routeSegment
}

type segmentKind int

const (
	segLiteral segmentKind = iota
	segParam
	segCatchAll
)

type routeSegment struct {
	kind        segmentKind
	literal     string
	name        string
	optional    bool
	hasDefault  bool
	defaultVal  string
	constraints []routeConstraint
}

type routeConstraint struct {
	text  string
	match func(string) bool
}

// ParseRouteTemplate parses a route template as written in function.json.
// Leading and trailing slashes are ignored.
func ParseRouteTemplate(template string) (*RouteTemplate, error) {
	raw := strings.Trim(template, "/")
	t := &RouteTemplate{raw: raw}
	if raw == "" {
		return t, nil
	}
	seen := map[string]bool{}
	parts := strings.Split(raw, "/")
	for i, part := range parts {
		seg, err := parseSegment(part)
		if err != nil {
			return nil, fmt.Errorf("route %q: segment %q: %w", template, part, err)
		}
		if seg.kind != segLiteral {
			key := strings.ToLower(seg.name)
			if seen[key] {
				return nil, fmt.Errorf("route %q: parameter %q appears more than once", template, seg.name)
			}
			seen[key] = true
		}
		if seg.kind == segCatchAll && i != len(parts)-1 {
			return nil, fmt.Errorf("route %q: catch-all parameter {*%s} must be the last segment", template, seg.name)
		}
		if i > 0 {
			prev := t.segments[i-1]
			if (prev.optional || prev.hasDefault) && seg.kind != segCatchAll && !seg.optional && !seg.hasDefault {
				return nil, fmt.Errorf("route %q: optional parameter {%s} may only be followed by optional segments", template, prev.name)
			}
		}
		t.segments = append(t.segments, seg)
	}
	return t, nil
}

func parseSegment(part string) (routeSegment, error) {
	if part == "" {
		return routeSegment{}, errors.New("empty segment")
	}
	if !strings.ContainsAny(part, "{}") {
		return routeSegment{kind: segLiteral, literal: part}, nil
	}
	if part[0] != '{' || part[len(part)-1] != '}' || strings.Count(part, "{") != 1 {
		return routeSegment{}, errors.New("a segment must be either a literal or exactly one {parameter}")
	}
	inner := part[1 : len(part)-1]
	seg := routeSegment{kind: segParam}
	switch {
	case strings.HasPrefix(inner, "**"):
		seg.kind, inner = segCatchAll, inner[2:]
	case strings.HasPrefix(inner, "*"):
		seg.kind, inner = segCatchAll, inner[1:]
	}
	end := strings.IndexAny(inner, ":?=")
	if end < 0 {
		end = len(inner)
	}
	seg.name, inner = inner[:end], inner[end:]
	if seg.name == "" || strings.ContainsAny(seg.name, "*/{}") {
		return routeSegment{}, fmt.Errorf("invalid parameter name %q", seg.name)
	}
	for strings.HasPrefix(inner, ":") {
		c, rest, err := parseConstraint(inner[1:])
		if err != nil {
			return routeSegment{}, err
		}
		seg.constraints = append(seg.constraints, c)
		inner = rest
	}
	switch {
	case inner == "":
	case inner == "?":
		if seg.kind == segCatchAll {
			return routeSegment{}, errors.New("a catch-all parameter cannot be marked optional")
		}
		seg.optional = true
	case strings.HasPrefix(inner, "="):
		seg.hasDefault, seg.defaultVal = true, inner[1:]
	default:
		return routeSegment{}, fmt.Errorf("unexpected %q after parameter %q", inner, seg.name)
	}
	return seg, nil
}

// parseConstraint parses "name" or "name(args)" at the start of s and returns
// the rest of s after it.
func parseConstraint(s string) (routeConstraint, string, error) {
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
		i++
	}
	name := s[:i]
	args, hasArgs := "", false
	if i < len(s) && s[i] == '(' {
		depth, j := 0, i
		for ; j < len(s); j++ {
			if s[j] == '\\' {
				j++
				continue
			}
			if s[j] == '(' {
				depth++
			} else if s[j] == ')' {
				depth--
				if depth == 0 {
					break
				}
			}
		}
		if j >= len(s) {
			return routeConstraint{}, "", fmt.Errorf("constraint %q: missing ')'", s)
		}
		args, hasArgs = s[i+1:j], true
		i = j + 1
	}
	text := s[:i]
	match, err := constraintFunc(strings.ToLower(name), args, hasArgs)
	if err != nil {
		return routeConstraint{}, "", fmt.Errorf("constraint %q: %w", text, err)
	}
	return routeConstraint{text: text, match: match}, s[i:], nil
}

var guidPattern = regexp.MustCompile(`^(\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}|\([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\)|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$`)

func constraintFunc(name, args string, hasArgs bool) (func(string) bool, error) {
	intArgs := func(n ...int) ([]int64, error) {
		fields := strings.Split(args, ",")
		ok := false
		for _, want := range n {
			ok = ok || len(fields) == want
		}
		if !hasArgs || !ok {
			return nil, fmt.Errorf("wrong number of arguments")
		}
		out := make([]int64, len(fields))
		for i, f := range fields {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("argument %q: %w", f, err)
			}
			out[i] = v
		}
		return out, nil
	}
	noArgs := func(f func(string) bool) (func(string) bool, error) {
		if hasArgs {
			return nil, errors.New("takes no arguments")
		}
		return f, nil
	}
	switch name {
	case "int":
		return noArgs(func(v string) bool { _, err := strconv.ParseInt(v, 10, 32); return err == nil })
	case "long":
		return noArgs(func(v string) bool { _, err := strconv.ParseInt(v, 10, 64); return err == nil })
	case "float", "double", "decimal":
		return noArgs(func(v string) bool { _, err := strconv.ParseFloat(v, 64); return err == nil })
	case "bool":
		return noArgs(func(v string) bool { return strings.EqualFold(v, "true") || strings.EqualFold(v, "false") })
	case "guid":
		return noArgs(guidPattern.MatchString)
	case "datetime":
		return noArgs(func(v string) bool { _, err := ParseTime(v); return err == nil })
	case "alpha":
		return noArgs(func(v string) bool {
			for _, r := range v {
				if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
					return false
				}
			}
			return v != ""
		})
	case "minlength", "maxlength", "length":
		n, err := intArgs(1, 2)
		if err != nil {
			return nil, err
		}
		lo, hi := int64(0), int64(-1)
		switch {
		case name == "minlength" && len(n) == 1:
			lo = n[0]
		case name == "maxlength" && len(n) == 1:
			hi = n[0]
		case name == "length" && len(n) == 1:
			lo, hi = n[0], n[0]
		case name == "length":
			lo, hi = n[0], n[1]
		default:
			return nil, errors.New("wrong number of arguments")
		}
		return func(v string) bool {
			l := int64(len([]rune(v)))
			return l >= lo && (hi < 0 || l <= hi)
		}, nil
	case "min", "max", "range":
		want := map[string]int{"min": 1, "max": 1, "range": 2}[name]
		n, err := intArgs(want)
		if err != nil {
			return nil, err
		}
		return func(v string) bool {
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return false
			}
			switch name {
			case "min":
				return x >= n[0]
			case "max":
				return x <= n[0]
			}
			return x >= n[0] && x <= n[1]
		}, nil
	case "regex":
		if !hasArgs {
			return nil, errors.New("needs a pattern")
		}
		// ASP.NET matches case-insensitively and unanchored.
		re, err := regexp.Compile("(?i)" + args)
		if err != nil {
			return nil, fmt.Errorf("pattern: %w", err)
		}
		return re.MatchString, nil
	}
	return nil, errors.New("unsupported route constraint")
}

// String returns the template without leading or trailing slashes.
func (t *RouteTemplate) String() string { return t.raw }

// ParamNames returns the names of the template's parameters in order.
func (t *RouteTemplate) ParamNames() []string {
	var names []string
	for _, s := range t.segments {
		if s.kind != segLiteral {
			names = append(names, s.name)
		}
	}
	return names
}

// Match matches a request path against the template. path is the part of the
// URL path after the route prefix, in escaped form (as url.URL.EscapedPath
// returns it), with or without a leading slash; one trailing slash is
// ignored. It returns the route parameters: optional parameters absent from
// the path are missing from the map, parameters with a default get it.
func (t *RouteTemplate) Match(path string) (map[string]string, bool) {
	path = strings.TrimPrefix(path, "/")
	path = strings.TrimSuffix(path, "/")
	var parts []string
	if path != "" {
		parts = strings.Split(path, "/")
	}
	params := map[string]string{}
	for i, seg := range t.segments {
		if seg.kind == segCatchAll {
			rest := parts[min(i, len(parts)):]
			decoded := make([]string, len(rest))
			for j, p := range rest {
				v, err := url.PathUnescape(p)
				if err != nil {
					return nil, false
				}
				decoded[j] = v
			}
			if !seg.assign(params, strings.Join(decoded, "/")) {
				return nil, false
			}
			return params, true
		}
		if i >= len(parts) {
			if !seg.assign(params, "") {
				return nil, false
			}
			continue
		}
		value, err := url.PathUnescape(parts[i])
		if err != nil {
			return nil, false
		}
		if seg.kind == segLiteral {
			if !strings.EqualFold(value, seg.literal) {
				return nil, false
			}
			continue
		}
		if value == "" || !seg.assign(params, value) {
			return nil, false
		}
	}
	if len(parts) > len(t.segments) {
		return nil, false
	}
	return params, true
}

// assign stores value (empty = absent) for a parameter segment, applying its
// default and constraints. It reports whether the segment matched.
func (s routeSegment) assign(params map[string]string, value string) bool {
	if s.kind == segLiteral {
		return false // a literal segment is never absent
	}
	if value == "" {
		switch {
		case s.hasDefault:
			params[s.name] = s.defaultVal
			return true
		case s.optional, s.kind == segCatchAll:
			return true
		}
		return false
	}
	for _, c := range s.constraints {
		if !c.match(value) {
			return false
		}
	}
	params[s.name] = value
	return true
}

// precedence ranks segments the way ASP.NET orders candidate routes: lower
// sorts first (literal, constrained parameter, parameter, optional, catch-all).
func (s routeSegment) precedence() int {
	switch {
	case s.kind == segLiteral:
		return 0
	case s.kind == segCatchAll:
		return 4
	case s.optional || s.hasDefault:
		return 3
	case len(s.constraints) > 0:
		return 1
	}
	return 2
}

// morePrecise reports whether t should be tried before u.
func (t *RouteTemplate) morePrecise(u *RouteTemplate) bool {
	for i := 0; i < len(t.segments) && i < len(u.segments); i++ {
		a, b := t.segments[i].precedence(), u.segments[i].precedence()
		if a != b {
			return a < b
		}
	}
	return len(t.segments) > len(u.segments)
}

// ParseTime parses a timestamp as the Functions host writes them, leniently:
// RFC 3339 with or without fractional seconds, with or without an offset
// (offset-less times are taken as UTC), or a bare date. The result is in UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999",
		"2006-01-02",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised timestamp %q", s)
}
