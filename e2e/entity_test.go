package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

// waitEntityBody polls GET url until it answers 200 with want.
func waitEntityBody(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := do(t, http.MethodGet, url, "")
		if r.status == http.StatusOK && string(r.body) == want {
			return
		}
		if r.status != http.StatusOK && r.status != http.StatusNotFound {
			t.Fatalf("GET %s: %d %s", url, r.status, r.body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %s, want 200 %s", url, r.status, r.body, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEntityHTTPAPI drives the entity HTTP API of the running test app on
// Azurite: bad requests get their 4xx JSON errors and leave every queue
// empty; 200 concurrent add signals over HTTP end in the exact sum read
// back with GET; reset makes the state 0.
func TestEntityHTTPAPI(t *testing.T) {
	hub := azuritetest.HubName(t)
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, hub, "CRASHTEST_DIR="+t.TempDir())...)
	waitReady(t, p)
	api := p.base + "/api/durabletask/entities/"

	bad := []struct {
		name, method, path, body string
		status                   int
		mention                  string
	}{
		{"unknown entity", "POST", "Nope/k?op=add", "1", 404, `"nope" is not an entity of this app`},
		{"empty key", "POST", "Counter/?op=add", "1", 400, "key is missing"},
		{"key with /", "POST", "Counter/a/b?op=add", "1", 400, "may not contain '/'"},
		{"key with escaped /", "POST", "Counter/a%2Fb?op=add", "1", 400, "may not contain '/'"},
		{"key with control character", "POST", "Counter/a%01b?op=add", "1", 400, "control character U+0001"},
		{"body not JSON", "POST", "Counter/k?op=add", "five", 400, "is not JSON"},
		{"no op", "POST", "Counter/k", "1", 400, "query parameter op"},
		{"oversized body", "POST", "Counter/k?op=add", `"` + strings.Repeat("x", 8<<20) + `"`, 413, ""},
		{"never signalled", "GET", "Counter/none", "", 404, `"@counter@none" does not exist`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, api+tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", r.status, tc.status, r.body)
			}
			e := decode[errorBody](t, r.body)
			if e.Error.Code == "" || !strings.Contains(e.Error.Message, tc.mention) {
				t.Fatalf("error %+v does not mention %q", e.Error, tc.mention)
			}
		})
	}
	lower := strings.ToLower(hub)
	for i := range 4 {
		if n := queuedMessages(t, fmt.Sprintf("%s-control-%02d", lower, i)); n != 0 {
			t.Fatalf("control queue %d holds %d messages after bad requests only", i, n)
		}
	}

	const n = 200
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(api+"Counter/c1?op=add", "application/x-www-form-urlencoded", strings.NewReader(strconv.Itoa(i)))
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				errs <- fmt.Sprintf("signal add %d: status %d", i, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	start := time.Now()
	waitEntityBody(t, api+"Counter/c1", strconv.Itoa(n*(n+1)/2))
	t.Logf("%d signals applied %v after the last 202", n, time.Since(start).Round(time.Millisecond))

	r := do(t, http.MethodPost, api+"counter/c1?op=reset", "")
	expect(t, r, http.StatusAccepted, "")
	waitEntityBody(t, api+"Counter/c1", "0")

	// The list: three more counters, read back one per page with state.
	for _, k := range []string{"c2", "c3", "c4"} {
		expect(t, do(t, http.MethodPost, api+"Counter/"+k+"?op=add", "2"), http.StatusAccepted, "")
		waitEntityBody(t, api+"Counter/"+k, "2")
	}
	var got []string
	token, pages := "", 0
	for {
		req, err := http.NewRequest(http.MethodGet, api+"Counter?top=1&fetchState=true", nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("x-ms-continuation-token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		for _, e := range decode[[]durableapi.EntityPayload](t, body) {
			got = append(got, e.EntityID.Name+"/"+e.EntityID.Key+"="+string(e.State))
		}
		pages++
		if token = resp.Header.Get("x-ms-continuation-token"); token == "" || pages > 10 {
			break
		}
	}
	if g := strings.Join(got, " "); g != "counter/c1=0 counter/c2=2 counter/c3=2 counter/c4=2" || pages < 4 {
		t.Fatalf("listed %q in %d pages, want the 4 counters one per page", g, pages)
	}
}
