package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

// http10 sends an HTTP/1.0 request without a Host header, as old clients
// and some probes do, and returns the response.
func http10(t *testing.T, base, method, path string) response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, method+" "+path+" HTTP/1.0\r\nContent-Length: 0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: readAll(t, resp)}
}

// checkRoundTrip starts Echo under the escaped ID segment, expects the
// instance to be named id, and follows its status link to the output.
func checkRoundTrip(t *testing.T, base, segment, id string) {
	t.Helper()
	cs := startVia(t, base, "Echo/"+segment, `"in `+id+`"`)
	if cs.ID != id {
		t.Fatalf("POST orchestrators/Echo/%s started %q, want %q", segment, cs.ID, id)
	}
	inst := base + "/api/durabletask/instances/" + url.PathEscape(id)
	if want := inst + "?"; !strings.HasPrefix(cs.StatusQueryGetURI, want) || !strings.HasPrefix(cs.TerminatePostURI, inst+"/terminate?") {
		t.Fatalf("links %s, %s: want them under %s", cs.StatusQueryGetURI, cs.TerminatePostURI, inst)
	}
	st := decode[statusPayload](t, pollStatus(t, cs.StatusQueryGetURI, 30*time.Second).body)
	if st.InstanceID != id || st.RuntimeStatus != "Completed" || string(st.Output) != `"in `+id+`"` {
		t.Fatalf("status via the link: %+v", st)
	}
}

// TestManagementPathsStandalone: each path segment is decoded exactly
// once, IDs that are not valid UTF-8 or contain '/' get a clear 400, and an
// HTTP/1.0 request without Host gets links to the address the app listens
// on.
func TestManagementPathsStandalone(t *testing.T) {
	p, _ := testApp(t)
	api := p.base + "/api/durabletask"

	checkRoundTrip(t, p.base, "pct%2541", "pct%41")
	expect(t, do(t, "GET", api+"/instances/pctA", ""), http.StatusNotFound, "pctA")
	checkRoundTrip(t, p.base, "a%252Fb", "a%2Fb")
	checkRoundTrip(t, p.base, "caf%C3%A9%20%2B1", "café +1")

	for _, tc := range []struct{ method, path, mention string }{
		{"POST", "/orchestrators/Echo/a%2Fb", `'/'`},
		{"GET", "/instances/a%2Fb", `'/'`},
		{"POST", "/instances/a%2Fb/terminate", `'/'`},
		{"GET", "/instances/%FF", "not valid UTF-8"},
		{"POST", "/orchestrators/Echo/x%C3%28", "not valid UTF-8 (byte 0xc3 at position 1)"},
		{"DELETE", "/instances/%C0%80", "not valid UTF-8"},
	} {
		r := do(t, tc.method, api+tc.path, "")
		expect(t, r, http.StatusBadRequest, tc.mention)
		if code := decode[errorBody](t, r.body).Error.Code; code != "InvalidInstanceId" {
			t.Errorf("%s %s: code %s", tc.method, tc.path, code)
		}
	}
	expect(t, do(t, "POST", api+"/orchestrators/Echo/%FE%FF", ""), http.StatusBadRequest, "UTF-8")

	r := http10(t, p.base, "POST", "/api/durabletask/orchestrators/Echo")
	expect(t, r, http.StatusAccepted, "")
	cs := decode[checkStatus](t, r.body)
	if !strings.HasPrefix(cs.StatusQueryGetURI, p.base+"/api/durabletask/instances/"+cs.ID+"?") || r.header.Get("Location") != cs.StatusQueryGetURI {
		t.Fatalf("HTTP/1.0 links: %s (Location %s), want them under %s", cs.StatusQueryGetURI, r.header.Get("Location"), p.base)
	}
	pollStatus(t, cs.StatusQueryGetURI, 30*time.Second)
	r = http10(t, p.base, "POST", "/api/orchestrators/Echo")
	expect(t, r, http.StatusAccepted, "")
	if cs := decode[checkStatus](t, r.body); !strings.HasPrefix(cs.StatusQueryGetURI, p.base+"/api/durabletask/instances/") {
		t.Fatalf("HttpStart over HTTP/1.0: %s", cs.StatusQueryGetURI)
	}
}

// TestManagementPathsUnderHost runs the same requests through the host
// emulator, which hands the handler the path the way the Functions host
// does: decoded once already, %2F kept, invalid UTF-8 escapes kept.
func TestManagementPathsUnderHost(t *testing.T) {
	host := startHost(t, "./e2e/testapp", appEnv(t, azuritetest.HubName(t), "CRASHTEST_DIR="+t.TempDir()))
	base := host.URL()
	api := base + "/api/durabletask"

	checkRoundTrip(t, base, "pct%2541", "pct%41")
	expect(t, do(t, "GET", api+"/instances/pctA", ""), http.StatusNotFound, "pctA")
	checkRoundTrip(t, base, "caf%C3%A9%20%2B1", "café +1")
	// The host passes an escaped slash on undecoded, so it cannot be told
	// from the text "%2F": the ID keeps it, and the links round-trip.
	checkRoundTrip(t, base, "a%2Fb", "a%2Fb")
	checkRoundTrip(t, base, "a%252Fb", "a%2Fb")
	// Escapes that are not UTF-8 stay text too: a valid ID, unknown here.
	expect(t, do(t, "GET", api+"/instances/%FF", ""), http.StatusNotFound, `"%FF"`)
	expect(t, do(t, "POST", api+"/orchestrators/Echo/a%5Cb", ""), http.StatusBadRequest, `'\\'`)

	// HTTP/1.0 without Host: the host sends http:///..., the links name
	// WEBSITE_HOSTNAME (localhost:<port> under func start).
	public := "http://localhost" + base[strings.LastIndex(base, ":"):]
	r := http10(t, base, "POST", "/api/durabletask/orchestrators/Echo")
	expect(t, r, http.StatusAccepted, "")
	cs := decode[checkStatus](t, r.body)
	if !strings.HasPrefix(cs.StatusQueryGetURI, public+"/api/durabletask/instances/"+cs.ID+"?") {
		t.Fatalf("HTTP/1.0 links: %s, want them under %s", cs.StatusQueryGetURI, public)
	}
	pollStatus(t, cs.StatusQueryGetURI, 30*time.Second)
	if errs := host.InvocationErrors(); len(errs) > 0 {
		t.Fatalf("the host emulator saw invocation errors: %v", errs)
	}
}
