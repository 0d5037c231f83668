package handler

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"

	"go.opentelemetry.io/otel/propagation"
)

// StandaloneHandler serves the public routes itself: /{routePrefix}/{route}
// for every httpTrigger function, with the route templates and methods of
// function.json. Errors are JSON ErrorBody responses: 404 NotFound for an
// unknown path, 405 MethodNotAllowed (with an Allow header) for a known path
// and another method, 413 RequestTooLarge for bodies over the limit,
// 501 NotImplemented for functions without Go code, 500 InternalError when
// a function panics.
func (a *App) StandaloneHandler() http.Handler {
	return http.HandlerFunc(a.serveStandalone)
}

func (a *App) serveStandalone(w http.ResponseWriter, r *http.Request) {
	a.serveRoute(w, r, false)
}

// serveRoute routes and serves a public request; viaHost says the
// Functions host forwarded it.
func (a *App) serveRoute(w http.ResponseWriter, r *http.Request, viaHost bool) {
	path := r.URL.EscapedPath()
	m, allowed, ok := a.router.Route(r.Method, path)
	if !ok && !viaHost && path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		a.mu.RLock()
		target := a.rootRedirect
		a.mu.RUnlock()
		if target != "" {
			writeResponse(w, &Response{StatusCode: http.StatusFound, Header: http.Header{"Location": {target}}})
			return
		}
	}
	if !ok {
		var resp *Response
		if len(allowed) > 0 {
			resp = Error(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
				fmt.Sprintf("method %s is not allowed for %s; allowed: %s", r.Method, path, strings.Join(allowed, ", ")))
			resp.Header.Set("Allow", strings.Join(allowed, ", "))
		} else {
			resp = Error(http.StatusNotFound, CodeNotFound, fmt.Sprintf("no function route matches %s %s", r.Method, path))
		}
		writeResponse(w, resp)
		return
	}
	if !a.authorized(m.Function, r) {
		writeResponse(w, Error(http.StatusUnauthorized, CodeUnauthorized, "a valid function key is required (x-functions-key header or code query parameter)"))
		return
	}
	body, err := readBody(w, r, a.maxBody)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeResponse(w, a.tooLarge())
			return
		}
		a.log.Warn("read request body failed", "function", m.Function.Name, "err", err)
		writeResponse(w, Error(http.StatusBadRequest, "BadRequest", "could not read the request body: "+err.Error()))
		return
	}
	header := r.Header.Clone()
	if r.Host != "" {
		header.Set("Host", r.Host)
	}
	req := &Request{
		Method:      r.Method,
		URL:         publicURL(r, a.knownHost(r, viaHost)),
		EscapedPath: path,
		Query:       r.URL.Query(),
		Header:      header,
		Params:      m.Params,
		Body:        body,
	}
	writeResponse(w, a.callHTTP(r.Context(), m.Function, req))
}

// authorized checks the function key in standalone mode: when a key is
// configured, every function whose authLevel is not anonymous needs it, in
// the x-functions-key header or the code query parameter (the header wins),
// as the Functions host does. (Under the host, the host checks keys.)
func (a *App) authorized(f FunctionInfo, r *http.Request) bool {
	if a.key == "" || strings.EqualFold(f.AuthLevel, "anonymous") {
		return true
	}
	given := r.Header.Get("x-functions-key")
	if given == "" {
		given = r.URL.Query().Get("code")
	}
	return subtle.ConstantTimeCompare([]byte(given), []byte(a.key)) == 1
}

func (a *App) tooLarge() *Response {
	return Error(http.StatusRequestEntityTooLarge, CodeRequestTooLarge,
		fmt.Sprintf("the request body exceeds the limit of %d bytes", a.maxBody))
}

// readBody reads the whole body, at most limit bytes; nil when empty.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, nil
	}
	return body, nil
}

// knownHost is the host for the URL of a request that names none (an
// HTTP/1.0 request without Host): under the Functions host its public name,
// else the local address the connection reached, which in standalone mode
// is the address the app listens on.
func (a *App) knownHost(r *http.Request, viaHost bool) string {
	if viaHost && a.publicHost != "" {
		return a.publicHost
	}
	if addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return addr.String()
	}
	return ""
}

// publicURL rebuilds the absolute URL the caller used; fallbackHost stands
// in when the request names no host.
func publicURL(r *http.Request, fallbackHost string) *url.URL {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		first, _, _ := strings.Cut(p, ",")
		if first = strings.ToLower(strings.TrimSpace(first)); first == "http" || first == "https" {
			scheme = first
		}
	}
	u := *r.URL
	u.Scheme, u.Host = scheme, r.Host
	if u.Host == "" {
		u.Host = fallbackHost
	}
	return &u
}

// callHTTP runs a bound HTTPFunc with panic recovery; an unbound function
// yields 501, a nil response 200.
func (a *App) callHTTP(ctx context.Context, f FunctionInfo, req *Request) (resp *Response) {
	fn := a.httpFunc(f.Name)
	if fn == nil {
		return Error(http.StatusNotImplemented, CodeNotImplemented,
			fmt.Sprintf("function %q is declared in function.json but no Go code is bound to it", f.Name))
	}
	if req.Params == nil {
		req.Params = map[string]string{}
	}
	// The caller's W3C trace context (traceparent, tracestate) becomes the
	// parent of what the function traces (a start's create_orchestration
	// span). It is read from the request the function serves: under the
	// Functions host from the invocation's HTTP request, never from the
	// host's own call to the handler.
	ctx = propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(req.Header))
	defer func() {
		if p := recover(); p != nil {
			a.log.ErrorContext(ctx, "function panicked", "function", f.Name, "invocationId", InvocationID(ctx),
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			resp = Error(http.StatusInternalServerError, CodeInternal,
				fmt.Sprintf("function %q failed with an internal error; see the handler log", f.Name))
		}
	}()
	resp = fn(ctx, req).normalized()
	a.log.DebugContext(ctx, "function returned", "function", f.Name, "invocationId", InvocationID(ctx),
		"status", resp.StatusCode)
	return resp
}

// writeResponse writes resp to an http.ResponseWriter.
func writeResponse(w http.ResponseWriter, resp *Response) {
	resp = resp.normalized()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(resp.Body)
}
