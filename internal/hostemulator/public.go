package hostemulator

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-durable/durablefunctions/handler"
)

// servePublic is the public HTTP surface: /{routePrefix}/{route} mapped to
// httpTrigger functions. Unknown routes and methods get the host's bare 404;
// failed invocations get its bare 500.
func (h *Host) servePublic(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.EscapedPath()
	if strings.HasPrefix(r.RequestURI, "/") {
		raw, _, _ = strings.Cut(r.RequestURI, "?")
	}
	path, err := hostPath(raw)
	if err != nil {
		h.logs.hostf(slog.LevelWarn, "bad request target %q: %v", raw, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	m, _, ok := h.router.Route(r.Method, routingPath(path))
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	f := m.Function
	var body []byte
	if r.ContentLength > maxHostRequestBody {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	if r.ContentLength > 0 {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, r.ContentLength)); err != nil {
			h.logs.hostf(slog.LevelWarn, "reading the request body for %s failed: %v", f.Name, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
	}
	ch := h.cfg.CustomHandler
	if f.IsHTTPOnly() && ch.EnableForwardingHTTPRequest && !ch.Legacy {
		h.forward(w, r, f, path, body)
		return
	}
	data, metadata, err := h.httpInvocation(r, f, path, m.Params, body)
	if err != nil {
		h.logs.hostf(slog.LevelError, "building the invocation of %s failed: %v", f.Name, err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	res, err := h.invoke(r.Context(), f, data, metadata)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	resp := res.HTTP
	if resp == nil {
		resp = &HTTPResponse{StatusCode: http.StatusOK, Header: http.Header{}}
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(resp.Body)
}

// httpInvocation builds Data and Metadata for an httpTrigger invocation in
// default mode (reference 2.5). path is the decoded host path (hostPath);
// Url carries its PathString form and the raw query, and params are the
// route values matched on it, so they are decoded once and no more.
func (h *Host) httpInvocation(r *http.Request, f handler.FunctionInfo, path string, params map[string]string, body []byte) (map[string]any, *foldMap, error) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	target := pathURIComponent(path)
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	query := joinedQuery(r.URL.Query())

	headers := map[string][]string{}
	for k, vs := range r.Header {
		headers[k] = slices.Clone(vs)
	}
	if r.Host != "" { // an HTTP/1.0 request may name none; Url then reads http:///...
		headers["Host"] = []string{r.Host}
	}
	if len(r.TransferEncoding) > 0 {
		headers["Transfer-Encoding"] = []string{strings.Join(r.TransferEncoding, ",")}
	}

	routeParams := map[string]any{}
	if t := f.RouteTemplate(); t != nil {
		for _, name := range t.ParamNames() {
			routeParams[name] = nil
		}
	}
	for k, v := range params {
		routeParams[k] = v
	}

	identities := []any{anonymousIdentity()}
	if f.AuthLevel != "anonymous" {
		// func start marks every request as authenticated at the Admin level.
		identities = append(identities, adminIdentity())
	}

	req := newFoldMap()
	req.set("Url", scheme+"://"+r.Host+target)
	req.set("Method", r.Method)
	req.set("Query", query)
	req.set("Headers", headers)
	req.set("Params", routeParams)
	req.set("Identities", identities)
	if len(body) > 0 {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/") {
			req.set("Body", base64.StdEncoding.EncodeToString(body))
		} else {
			req.set("Body", string(body))
		}
	}

	md := newFoldMap()
	md.set("Query", query)
	singleHeaders := map[string]string{}
	for k, vs := range headers {
		singleHeaders[k] = strings.Join(vs, ",")
	}
	md.set("Headers", singleHeaders)
	if len(body) > 0 {
		promoteJSON(md, string(body))
	}
	for k, v := range query {
		if !strings.EqualFold(k, "code") {
			md.set(k, v)
		}
	}
	for k, v := range params {
		md.set(k, v)
	}
	metadata, err := encodeMetadata(md, f.Name)
	if err != nil {
		return nil, nil, err
	}
	return map[string]any{f.TriggerName: req}, metadata, nil
}

// joinedQuery flattens query parameters, repeated values joined with ",".
func joinedQuery(q url.Values) map[string]string {
	out := make(map[string]string, len(q))
	for k, vs := range q {
		out[k] = strings.Join(vs, ",")
	}
	return out
}

func anonymousIdentity() map[string]any {
	return map[string]any{
		"AuthenticationType": nil,
		"IsAuthenticated":    false,
		"Actor":              nil,
		"BootstrapContext":   nil,
		"Claims":             []any{},
		"Label":              nil,
		"Name":               nil,
		"NameClaimType":      "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
		"RoleClaimType":      "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
	}
}

func adminIdentity() map[string]any {
	id := anonymousIdentity()
	id["AuthenticationType"] = "WebJobsAuthLevel"
	id["IsAuthenticated"] = true
	id["Claims"] = []any{map[string]any{
		"Type":  "http://schemas.microsoft.com/2017/07/functions/claims/authlevel",
		"Value": "Admin",
	}}
	return id
}

// contentHeadersKept are the content headers forwarding keeps; the others
// are dropped (reference 4.1).
var droppedContentHeaders = []string{
	"Allow", "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Location",
	"Content-MD5", "Content-Range", "Expires", "Last-Modified",
}

// forward relays an http-only function's request to the handler with its
// original method, path and headers (enableForwardingHttpRequest), and the
// handler's response back as it is. path is the decoded host path; the
// host sends it in System.Uri's form of its display URL, which it cannot
// build for a request that names no host (it fails the invocation).
func (h *Host) forward(w http.ResponseWriter, r *http.Request, f handler.FunctionInfo, path string, body []byte) {
	ctx, cancel := h.invocationContext(r.Context())
	defer cancel()
	id := newGUID()
	if r.Host == "" {
		h.recordError(f.Name, id, KindRequestURI, true, errors.New("invalid URI: the request names no host, so its URL has none"))
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	wk, err := h.waitWorker(ctx, true)
	if err != nil {
		h.recordError(f.Name, id, KindNotReady, true, err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	target := wk.base + forwardedPath(path)
	if q := r.URL.Query(); len(q) > 0 {
		flat := url.Values{}
		for k, v := range joinedQuery(q) {
			flat.Set(k, v)
		}
		target += "?" + flat.Encode()
	}
	var reader io.Reader
	if len(body) > 0 {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, target, reader)
	if err != nil {
		h.recordError(f.Name, id, KindTransport, true, err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	for k, vs := range r.Header {
		if !slices.Contains(droppedContentHeaders, k) {
			req.Header[k] = slices.Clone(vs)
		}
	}
	req.Host = r.Host
	h.setHostHeaders(req, id)
	req.Header.Set("User-Agent", strings.TrimSpace(r.Header.Get("User-Agent")+" Azure-Functions-Host/"+h.hostVersion))
	resp, err := wk.client().Do(req)
	if err != nil {
		h.transportFailure(ctx, wk, f.Name, id, err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil && !errors.Is(err, io.EOF) {
		h.logs.hostf(slog.LevelWarn, "relaying the response of %s failed: %v", f.Name, err)
	}
}
