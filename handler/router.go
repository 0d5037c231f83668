package handler

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Router maps public request paths (/{routePrefix}/{route}) to httpTrigger
// functions. Routes are tried most specific first (literal segments before
// constrained parameters, plain parameters, optional ones and catch-alls).
// Disabled functions get no route.
type Router struct {
	prefix []string // lower-case prefix segments
	routes []FunctionInfo
}

// RouteMatch is a successful Router.Route result.
type RouteMatch struct {
	// Function is the matched function.
	Function FunctionInfo
	// Params holds the route parameters.
	Params map[string]string
}

// NewRouter builds a router for the httpTrigger functions among fns.
func NewRouter(routePrefix string, fns []FunctionInfo) (*Router, error) {
	r := &Router{}
	if p := strings.Trim(routePrefix, "/"); p != "" {
		r.prefix = strings.Split(strings.ToLower(p), "/")
	}
	for _, f := range fns {
		if !f.IsHTTP() || f.Disabled {
			continue
		}
		if f.template == nil {
			t, err := ParseRouteTemplate(f.Route)
			if err != nil {
				return nil, fmt.Errorf("function %q: %w", f.Name, err)
			}
			f.template = t
		}
		r.routes = append(r.routes, f)
	}
	slices.SortStableFunc(r.routes, func(a, b FunctionInfo) int {
		switch {
		case a.template.morePrecise(b.template):
			return -1
		case b.template.morePrecise(a.template):
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return r, nil
}

// StripPrefix removes the route prefix from an escaped URL path and returns
// the rest, still escaped, without a leading slash; ok is false when the
// path is outside the prefix. Each prefix segment is decoded once and
// matched case-insensitively.
func (r *Router) StripPrefix(escapedPath string) (rest string, ok bool) {
	rest = strings.TrimPrefix(escapedPath, "/")
	for _, p := range r.prefix {
		seg, after, _ := strings.Cut(rest, "/")
		if v, err := url.PathUnescape(seg); err != nil || !strings.EqualFold(v, p) {
			return "", false
		}
		rest = after
	}
	return rest, true
}

// Route finds the function for method and escaped URL path (including the
// route prefix). When no route accepts the method but some route matches the
// path, ok is false and allowed lists the methods those routes accept; when
// nothing matches the path, allowed is empty too.
func (r *Router) Route(method, escapedPath string) (m RouteMatch, allowed []string, ok bool) {
	rest, inPrefix := r.StripPrefix(escapedPath)
	if !inPrefix {
		return RouteMatch{}, nil, false
	}
	method = strings.ToUpper(method)
	for _, f := range r.routes {
		params, matched := f.template.Match(rest)
		if !matched {
			continue
		}
		if len(f.Methods) == 0 || slices.Contains(f.Methods, method) {
			return RouteMatch{Function: f, Params: params}, nil, true
		}
		for _, am := range f.Methods {
			if !slices.Contains(allowed, am) {
				allowed = append(allowed, am)
			}
		}
	}
	return RouteMatch{}, allowed, false
}
