package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// httpTarget is the server the orchestrations call: it records each
// request as "METHOD path key=<x-functions-key> auth=<Authorization>".
type httpTarget struct {
	mu   sync.Mutex
	reqs []string
	srv  *httptest.Server
}

func (h *httpTarget) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.reqs...)
}

// startHTTPTarget serves /job/{name}: the first two requests of a job are
// answered 202 with Location /job/{name}/status and Retry-After: 1, the
// third 200 with a JSON body; /echo-auth answers 200 at once.
func startHTTPTarget(t *testing.T) *httpTarget {
	t.Helper()
	h := &httpTarget{}
	counts := map[string]int{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.reqs = append(h.reqs, fmt.Sprintf("%s %s key=%s auth=%s", r.Method, r.URL.Path, r.Header.Get("X-Functions-Key"), r.Header.Get("Authorization")))
		job := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/job/"), "/status")
		counts[job]++
		n := counts[job]
		h.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/job/") && n <= 2 {
			w.Header().Set("Location", "/job/"+job+"/status")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"job":%q,"done":true}`, job)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// startIdentityEndpoint is a loopback managed-identity endpoint speaking
// the App Service protocol (what azidentity sends when IDENTITY_ENDPOINT
// and IDENTITY_HEADER are set).
func startIdentityEndpoint(t *testing.T, secret string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Header.Get("X-IDENTITY-HEADER") != secret || q.Get("api-version") != "2019-08-01" || q.Get("resource") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"wrong identity header, api-version or resource"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"access_token": "mi-token-for-" + q.Get("resource"),
			"expires_on":   strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10),
			"resource":     q.Get("resource"),
			"token_type":   "Bearer",
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// startCallHTTP starts the testapp's CallHTTP orchestration with in and
// returns its instance ID and final status payload.
func startCallHTTP(t *testing.T, base string, in map[string]any) (string, statusPayload) {
	t.Helper()
	b, _ := json.Marshal(in)
	r := do(t, http.MethodPost, base+"/api/orchestrators/CallHTTP", string(b))
	if r.status != http.StatusAccepted {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	cs := decode[checkStatus](t, r.body)
	final := pollStatus(t, cs.StatusQueryGetURI+"&showHistory=true&showHistoryOutput=true", 45*time.Second)
	return cs.ID, decode[statusPayload](t, final.body)
}

// TestCallHTTPEndToEnd runs durable HTTP in the real app on Azurite: a
// target that answers 202 with Location and Retry-After: 1 twice, then 200,
// is followed with a POST and two GETs (x-functions-key dropped), each
// poll after a recorded 1 s durable timer; and a call with a
// managed-identity token source reaches the target with the bearer token
// the loopback App Service identity endpoint issued, well within its
// Timeout.
func TestCallHTTPEndToEnd(t *testing.T) {
	hub := azuritetest.HubName(t)
	target := startHTTPTarget(t)
	const secret = "e2e-identity-secret"
	identity := startIdentityEndpoint(t, secret)
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, hub,
		"IDENTITY_ENDPOINT="+identity.URL+"/msi/token", "IDENTITY_HEADER="+secret)...)
	defer p.stop()
	waitReady(t, p)

	wantPolled := `{"status":200,"body":"{\"job\":\"a\",\"done\":true}"}`
	outputs := map[string]string{}

	t.Run("202 twice, then 200", func(t *testing.T) {
		id, st := startCallHTTP(t, p.base, map[string]any{
			"method": "POST", "url": target.srv.URL + "/job/a", "body": `{"start":true}`,
			"headers": map[string]string{"x-functions-key": "fkey", "Content-Type": "application/json"},
		})
		outputs[id] = wantPolled
		if st.RuntimeStatus != "Completed" || string(st.Output) != wantPolled {
			t.Fatalf("status %s output %s", st.RuntimeStatus, st.Output)
		}
		var got []string
		for _, r := range target.requests() {
			if strings.HasPrefix(r, "POST /job/a") || strings.HasPrefix(r, "GET /job/a") {
				got = append(got, r)
			}
		}
		want := []string{"POST /job/a key=fkey auth=", "GET /job/a/status key= auth=", "GET /job/a/status key= auth="}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("target saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// History: three calls of the built-in activity, two 1 s timers.
		type entry struct {
			EventType, FunctionName, Timestamp, FireAt string
			Result                                     json.RawMessage
		}
		var calls, created, fired int
		for _, raw := range st.HistoryEvents {
			var e entry
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			switch e.EventType {
			case "TaskCompleted":
				calls++
				if e.FunctionName != durable.HTTPActivityName {
					t.Errorf("activity %q, want %q", e.FunctionName, durable.HTTPActivityName)
				}
			case "TimerCreated":
				created++
				at, err1 := time.Parse(time.RFC3339Nano, e.Timestamp)
				fire, err2 := time.Parse(time.RFC3339Nano, e.FireAt)
				if err1 != nil || err2 != nil || fire.Sub(at) != time.Second {
					t.Errorf("timer created at %s fires at %s: want Retry-After's 1 s", e.Timestamp, e.FireAt)
				}
			case "TimerFired":
				fired++
			}
		}
		if calls != 3 || created != 2 || fired != 2 {
			t.Errorf("history: %d activity results, %d timers created, %d fired; want 3, 2, 2", calls, created, fired)
		}
	})

	t.Run("managed-identity token", func(t *testing.T) {
		id, st := startCallHTTP(t, p.base, map[string]any{
			"method": "GET", "url": target.srv.URL + "/echo-auth", "resource": "https://target.example.test",
			// In time: the timeout's timer is cancelled, and leaves the
			// queue (the invariant check below sees it drained).
			"timeoutSeconds": 3600,
		})
		outputs[id] = `{"status":200,"body":"{\"job\":\"/echo-auth\",\"done\":true}"}`
		if st.RuntimeStatus != "Completed" || string(st.Output) != outputs[id] {
			t.Fatalf("status %s output %s", st.RuntimeStatus, st.Output)
		}
		found := false
		for _, r := range target.requests() {
			if r == "GET /echo-auth key= auth=Bearer mi-token-for-https://target.example.test" {
				found = true
			}
		}
		if !found {
			t.Errorf("the target never saw the bearer token; it saw %q", target.requests())
		}
	})

	ids := make([]string, 0, len(outputs))
	for id := range outputs {
		ids = append(ids, id)
	}
	checkInvariants(t, hub, ids, func(id string) string { return outputs[id] })
}
