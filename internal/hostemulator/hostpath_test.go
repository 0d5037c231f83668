package hostemulator

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestHostPath(t *testing.T) {
	tests := []struct {
		raw, want string
		err       error
	}{
		{"/api/x", "/api/x", nil},
		{"/api/a%20b", "/api/a b", nil},
		{"/api/pct%2541", "/api/pct%41", nil}, // decoded once: %25 -> %
		{"/api/%41%62", "/api/Ab", nil},
		{"/api/a%2Fb", "/api/a%2Fb", nil}, // Kestrel keeps an escaped slash
		{"/api/a%2fb", "/api/a%2fb", nil},
		{"/api/caf%C3%A9", "/api/café", nil},
		{"/api/%FF", "/api/%FF", nil},                   // not UTF-8: kept as it is
		{"/api/%C3%28", "/api/%C3(", nil},               // bad continuation: the lead stays
		{"/api/%C0%80", "/api/%C0%80", nil},             // overlong
		{"/api/%ED%A0%80", "/api/%ED%A0%80", nil},       // surrogate
		{"/api/%F4%90%80%80", "/api/%F4%90%80%80", nil}, // above U+10FFFF
		{"/api/%zz%4", "/api/%zz%4", nil},
		{"/api/%F0%9F%98%80", "/api/\U0001F600", nil},
		{"/api/a/../b", "/api/b", nil},
		{"/api/a/%2E%2E/b", "/api/b", nil}, // decoded first, then normalised
		{"/api/./x/.", "/api/x/", nil},
		{"/..", "/", nil},
		{"/api/%00", "", errNullInPath},
	}
	for _, tc := range tests {
		got, err := hostPath(tc.raw)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("hostPath(%q) = %q, %v; want %q, %v", tc.raw, got, err, tc.want, tc.err)
		}
	}
}

func TestHostPathForms(t *testing.T) {
	tests := []struct {
		path, uri, forwarded string
	}{
		{"/api/x", "/api/x", "/api/x"},
		{"/api/a b", "/api/a%20b", "/api/a%20b"},
		{"/api/pct%41", "/api/pct%41", "/api/pctA"}, // System.Uri decodes escaped unreserved characters
		{"/api/a%2Fb", "/api/a%2Fb", "/api/a%2Fb"},
		{"/api/café", "/api/caf%C3%A9", "/api/caf%C3%A9"},
		{"/api/100%", "/api/100%25", "/api/100%25"},
		{"/api/a'b(c)!*:@;=,+$&~", "/api/a'b(c)!*:@;=,+$&~", "/api/a'b(c)!*:@;=,+$&~"},
		{"/api/[x]^`{|}<>\"", "/api/%5Bx%5D%5E%60%7B%7C%7D%3C%3E%22", "/api/%5Bx%5D%5E%60%7B%7C%7D%3C%3E%22"},
	}
	for _, tc := range tests {
		if got := pathURIComponent(tc.path); got != tc.uri {
			t.Errorf("pathURIComponent(%q) = %q, want %q", tc.path, got, tc.uri)
		}
		if got := forwardedPath(tc.path); got != tc.forwarded {
			t.Errorf("forwardedPath(%q) = %q, want %q", tc.path, got, tc.forwarded)
		}
	}
}

type pathEcho struct {
	URL         string            `json:"url"`
	EscapedPath string            `json:"escapedPath"`
	Host        string            `json:"host"`
	Params      map[string]string `json:"params"`
}

// rawRequest sends an HTTP/1.0 request without a Host header and decodes the
// echo.
func rawRequest(t *testing.T, addr, path string) (int, pathEcho) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e pathEcho
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return resp.StatusCode, e
}

// TestPathDecodedOnceAsTheHostDoes sends escaped paths through the emulator
// in both modes and checks what the handler receives: the path decoded
// once by the host, never twice.
func TestPathDecodedOnceAsTheHostDoes(t *testing.T) {
	for _, forwarding := range []bool{false, true} {
		host := hostJSON()
		if forwarding {
			host = `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"},"enableForwardingHttpRequest":true}}`
		}
		root := newAppRoot(t, host, map[string]string{"Echo": echoJSON}, "")
		h := startHost(t, root, Options{})
		tests := []struct {
			path, rest, url, escaped string
		}{
			// Invocation mode: Url is the host's PathString form, Params its
			// decoded values. Forwarding: the System.Uri form of that path.
			{"/api/echo/1/pct%2541", "pct%41", "/api/echo/1/pct%41", "/api/echo/1/pctA"},
			{"/api/echo/1/a%2Fb", "a%2Fb", "/api/echo/1/a%2Fb", "/api/echo/1/a%2Fb"},
			{"/api/echo/1/x/a%20b", "x/a b", "/api/echo/1/x/a%20b", "/api/echo/1/x/a%20b"},
			{"/api/echo/1/%FF", "%FF", "/api/echo/1/%FF", "/api/echo/1/%FF"},
			{"/api/echo/1/z/../y", "y", "/api/echo/1/y", "/api/echo/1/y"},
		}
		for _, tc := range tests {
			status, _, body := do(t, "GET", h.URL()+tc.path, "", "")
			if status != http.StatusOK {
				t.Fatalf("forwarding=%v %s: status %d %s", forwarding, tc.path, status, body)
			}
			var e pathEcho
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if forwarding {
				// The handler decodes what it received once more, like any server.
				if e.EscapedPath != tc.escaped {
					t.Errorf("forwarded %s: handler received %q, want %q", tc.path, e.EscapedPath, tc.escaped)
				}
				continue
			}
			if e.Params["rest"] != tc.rest || e.URL != h.URL()+tc.url || e.EscapedPath != "" {
				t.Errorf("%s: rest %q url %q escapedPath %q; want %q %q", tc.path, e.Params["rest"], e.URL, e.EscapedPath, tc.rest, h.URL()+tc.url)
			}
		}
		if status, _, _ := do(t, "GET", h.URL()+"/api/echo/1/%00", "", ""); status != http.StatusBadRequest {
			t.Errorf("forwarding=%v escaped NUL: status %d, want 400", forwarding, status)
		}

		// HTTP/1.0 without Host: in invocation mode the host sends
		// "http:///api/...", and the handler names the app by
		// WEBSITE_HOSTNAME; forwarding cannot build the URL at all.
		status, e := rawRequest(t, strings.TrimPrefix(h.URL(), "http://"), "/api/echo/1/x")
		if forwarding {
			if status != http.StatusInternalServerError {
				t.Errorf("forwarded HTTP/1.0 without Host: status %d, want 500", status)
			}
			errs := h.InvocationErrors()
			if len(errs) != 1 || errs[0].Kind != KindRequestURI {
				t.Errorf("invocation errors %v, want one %s", errs, KindRequestURI)
			}
			continue
		}
		port := h.URL()[strings.LastIndex(h.URL(), ":"):]
		if status != http.StatusOK || e.URL != "http://localhost"+port+"/api/echo/1/x" || e.Host != "" {
			t.Errorf("HTTP/1.0 without Host: %d url %q host header %q", status, e.URL, e.Host)
		}
		assertNoInvocationErrors(t, h)
	}
}
