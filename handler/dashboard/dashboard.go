// Package dashboard serves the built-in web dashboard: static files (one
// HTML page, one JavaScript module, one style sheet) embedded in the
// binary, so that `go build` alone yields a working, offline dashboard.
// Every piece of data the page shows or changes goes through the
// management API (package durableapi) with the page's function key; the
// files themselves hold no data and are served without a key, so that the
// page can open and ask for one.
package dashboard

import (
	"context"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/go-durable/durablefunctions/handler"
)

// Function is the function folder whose route serves the dashboard:
// DurableTaskUI/function.json declares the route durabletask/ui/{*path},
// authLevel anonymous, GET only.
const Function = "DurableTaskUI"

// RouteParam is the catch-all route parameter holding the file path.
const RouteParam = "path"

// CSP is the Content-Security-Policy of every dashboard file: scripts,
// styles and data only from the app itself (no inline script, no CDN), and
// the page may not be framed.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

//go:embed static
var static embed.FS

// files is the static folder's content.
var files = func() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the folder
	}
	return sub
}()

// Serve is the dashboard's HTTP function. It answers GET (and HEAD) for
// the embedded files: the route's catch-all parameter names the file, an
// empty one the page itself (index.html). The route without its trailing
// slash redirects to it, so that the page's relative links resolve.
// Unknown files answer 404, other methods 405.
func Serve(_ context.Context, req *handler.Request) *handler.Response {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		resp := handler.Error(http.StatusMethodNotAllowed, "MethodNotAllowed", "the dashboard's files answer GET only, not "+req.Method)
		resp.Header.Set("Allow", "GET, HEAD")
		return resp
	}
	name := strings.Trim(req.Params[RouteParam], "/")
	if name == "" {
		p := req.EscapedPath
		if p == "" && req.URL != nil {
			p = req.URL.EscapedPath()
		}
		if p != "" && !strings.HasSuffix(p, "/") {
			return &handler.Response{StatusCode: http.StatusMovedPermanently, Header: http.Header{"Location": {p + "/"}}}
		}
		name = "index.html"
	}
	b, err := fs.ReadFile(files, name)
	if err != nil || !fs.ValidPath(name) {
		return handler.Error(http.StatusNotFound, "NotFound", "the dashboard has no file "+name)
	}
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // the system's MIME table may lack or differ on these
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	}
	h := http.Header{
		"Content-Type":            {ct},
		"Content-Security-Policy": {CSP},
		"X-Content-Type-Options":  {"nosniff"},
		"Referrer-Policy":         {"no-referrer"},
		// The files change with the binary; revalidate rather than cache stale ones.
		"Cache-Control": {"no-cache"},
	}
	if req.Method == http.MethodHead {
		return &handler.Response{StatusCode: http.StatusOK, Header: h}
	}
	return &handler.Response{StatusCode: http.StatusOK, Header: h, Body: b}
}
