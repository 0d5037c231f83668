package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

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
	got, pages, _ := listEntities(t, api+"Counter?top=1&fetchState=true")
	if g := strings.Join(got, " "); g != "counter/c1=0 counter/c2=2 counter/c3=2 counter/c4=2" || pages < 4 {
		t.Fatalf("listed %q in %d pages, want the 4 counters one per page", g, pages)
	}

	// The instance list leaves entities out, as Durable Task's clients do,
	// unless the prefix asks for them.
	base := p.base + "/api/durabletask/instances"
	if r := do(t, http.MethodGet, base, ""); r.status != http.StatusOK || strings.Contains(string(r.body), "@counter@") {
		t.Fatalf("GET instances: %d %s, want no entity", r.status, r.body)
	}
	r = do(t, http.MethodGet, base+"?instanceIdPrefix=%40counter%40", "")
	if n := len(decode[[]statusPayload](t, r.body)); r.status != http.StatusOK || n != 4 {
		t.Fatalf("GET instances by the entity prefix: %d, %d instances %s; want the 4 counters", r.status, n, r.body)
	}
}

// listEntities pages through GET url (following x-ms-continuation-token)
// and returns the entities as name/key[=state], the number of pages, and
// whether any entity carried a "state" member.
func listEntities(t *testing.T, url string) (got []string, pages int, withState bool) {
	t.Helper()
	token := ""
	for {
		req, err := http.NewRequest(http.MethodGet, url, nil)
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
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
		}
		for _, raw := range decode[[]map[string]json.RawMessage](t, body) {
			b, err := json.Marshal(raw)
			if err != nil {
				t.Fatal(err)
			}
			e := decode[durableapi.EntityPayload](t, b)
			s := e.EntityID.Name + "/" + e.EntityID.Key
			if _, ok := raw["state"]; ok {
				withState = true
				s += "=" + string(e.State)
			}
			got = append(got, s)
		}
		pages++
		if token = resp.Header.Get("x-ms-continuation-token"); token == "" {
			return got, pages, withState
		}
		if pages > 20 {
			t.Fatalf("GET %s: more than 20 pages", url)
		}
	}
}

// TestEntityHTTPListAndReadErrors covers, in the running app on Azurite,
// what TestEntityHTTPAPI does not: GET entities across names, without and
// with state, bounded by lastOperationTimeFrom/To, paged with top; an
// entity deleted by its "delete" operation is neither listed nor read; and
// the 4xx JSON errors of bad reads and bad list filters, which write
// nothing.
func TestEntityHTTPListAndReadErrors(t *testing.T) {
	hub := azuritetest.HubName(t)
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, hub, "CRASHTEST_DIR="+t.TempDir())...)
	waitReady(t, p)
	base := p.base + "/api/durabletask/"

	bad := []struct {
		name, path string
		status     int
		mention    string
	}{
		{"read with control character", "entities/Counter/a%7Fb", 400, "control character U+007F"},
		{"read with /", "entities/Counter/a%2Fb", 400, "may not contain '/'"},
		{"read of unknown name", "entities/Nope/k", 404, `"@nope@k" does not exist`},
		{"list with bad from", "entities?lastOperationTimeFrom=yesterday", 400, `lastOperationTimeFrom="yesterday" is not a date`},
		{"list with bad to", "entities/Counter?lastOperationTimeTo=2026-13-01", 400, "lastOperationTimeTo"},
		{"list with to before from", "entities?lastOperationTimeFrom=2026-02-01&lastOperationTimeTo=2026-01-01", 400, "lastOperationTimeTo is before lastOperationTimeFrom"},
		{"list with top 0", "entities?top=0", 400, `top="0"`},
		{"list with top not a number", "entities/Counter?top=ten", 400, `top="ten"`},
		{"list with a forged continuation", "entities", 400, "x-ms-continuation-token"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, base+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "list with a forged continuation" {
				req.Header.Set("x-ms-continuation-token", "bm90IGEgdG9rZW4=")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			e := decode[errorBody](t, body)
			if e.Error.Code == "" || !strings.Contains(e.Error.Message, tc.mention) {
				t.Fatalf("error %+v does not mention %q", e.Error, tc.mention)
			}
		})
	}
	// Nothing written: no entity row ('@' sorts before 'A'), no message.
	filter := "PartitionKey ge '@' and PartitionKey lt 'A'"
	pager := tableService(t).NewClient(hub + "Instances").NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Entities) != 0 {
			t.Fatalf("entity rows after bad requests only: %s", page.Entities[0])
		}
	}
	for i := range 4 {
		if n := queuedMessages(t, fmt.Sprintf("%s-control-%02d", strings.ToLower(hub), i)); n != 0 {
			t.Fatalf("control queue %d holds %d messages after bad requests only", i, n)
		}
	}

	before := time.Now().UTC().Add(-time.Second)
	for _, s := range []struct{ key, body string }{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"gone", "4"}} {
		expect(t, do(t, http.MethodPost, base+"entities/Counter/"+s.key+"?op=add", s.body), http.StatusAccepted, "")
		waitEntityBody(t, base+"entities/Counter/"+s.key, s.body)
	}
	expect(t, do(t, http.MethodPost, base+"entities/Counter/gone?op=delete", ""), http.StatusAccepted, "")
	deadline := time.Now().Add(30 * time.Second)
	for do(t, http.MethodGet, base+"entities/Counter/gone", "").status != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatal("Counter/gone still has state after delete")
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := time.Now().UTC().Add(time.Second)
	from, to := url.QueryEscape(before.Format(time.RFC3339Nano)), url.QueryEscape(after.Format(time.RFC3339Nano))

	for _, tc := range []struct {
		name, query string
		want        string
		state       bool
		minPages    int
	}{
		{"all names, no state", "entities", "counter/a counter/b counter/c", false, 1},
		{"all names, state, two a page", "entities?fetchState=true&top=2", "counter/a=1 counter/b=2 counter/c=3", true, 2},
		{"by name, one a page", "entities/counter?top=1", "counter/a counter/b counter/c", false, 3},
		{"in the test's time", "entities/Counter?lastOperationTimeFrom=" + from + "&lastOperationTimeTo=" + to, "counter/a counter/b counter/c", false, 1},
		{"from after", "entities?lastOperationTimeFrom=" + to, "", false, 1},
		{"to before", "entities?lastOperationTimeTo=" + from, "", false, 1},
		{"unknown name", "entities/Nope", "", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, pages, withState := listEntities(t, base+tc.query)
			if g := strings.Join(got, " "); g != tc.want || withState != tc.state || pages < tc.minPages {
				t.Fatalf("listed %q in %d pages (state members: %v), want %q in at least %d (state members: %v)",
					g, pages, withState, tc.want, tc.minPages, tc.state)
			}
		})
	}
}
