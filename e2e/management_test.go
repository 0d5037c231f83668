package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

// testApp starts the e2e test app standalone on a fresh hub.
func testApp(t *testing.T) (*process, string) {
	t.Helper()
	dir := t.TempDir()
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, azuritetest.HubName(t), "CRASHTEST_DIR="+dir)...)
	return p, dir
}

type errorBody struct {
	Error struct{ Code, Message string } `json:"error"`
}

// expect checks a response's status and, for errors, that the JSON error
// mentions want.
func expect(t *testing.T, r response, status int, want string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if want != "" {
		e := decode[errorBody](t, r.body)
		if !strings.Contains(e.Error.Message, want) {
			t.Fatalf("error %q does not mention %q", e.Error.Message, want)
		}
	}
}

func startVia(t *testing.T, base, path, body string) checkStatus {
	t.Helper()
	r := do(t, http.MethodPost, base+"/api/durabletask/orchestrators/"+path, body)
	expect(t, r, http.StatusAccepted, "")
	return decode[checkStatus](t, r.body)
}

func waitRuntimeStatus(t *testing.T, base, id, want string) statusPayload {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := do(t, http.MethodGet, base+"/api/durabletask/instances/"+id, "")
		if r.status == http.StatusOK || r.status == http.StatusAccepted {
			st := decode[statusPayload](t, r.body)
			if st.RuntimeStatus == want {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s never became %s: %d %s", id, want, r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestManagementStartForms(t *testing.T) {
	p, _ := testApp(t)
	api := p.base + "/api/durabletask"

	cs := startVia(t, p.base, "Echo", `{"a":1}`)
	if len(cs.ID) != 32 {
		t.Fatalf("generated ID %q", cs.ID)
	}
	cs = startVia(t, p.base, "Waiter/chosen-id-1", "")
	if cs.ID != "chosen-id-1" {
		t.Fatalf("chosen ID not used: %q", cs.ID)
	}
	waitRuntimeStatus(t, p.base, "chosen-id-1", "Running")
	expect(t, do(t, "POST", api+"/orchestrators/Waiter/chosen-id-1", ""), http.StatusConflict, "chosen-id-1")
	expect(t, do(t, "POST", api+"/orchestrators/Nope", ""), http.StatusNotFound, "Nope")
	expect(t, do(t, "POST", api+"/orchestrators/Echo", `{"broken`), http.StatusBadRequest, "JSON")
	expect(t, do(t, "POST", api+"/orchestrators/Echo/bad%23id", ""), http.StatusBadRequest, "#")
	expect(t, do(t, "POST", api+"/orchestrators/Echo?timeout=5", ""), http.StatusBadRequest, "pollingInterval")
	expect(t, do(t, "GET", api+"/orchestrators/Echo", ""), http.StatusMethodNotAllowed, "POST")

	// The wait form: 200 with the output itself when it finishes in time.
	r := do(t, "POST", api+"/orchestrators/Echo?timeout=20&pollingInterval=1", `{"b":[1,2]}`)
	if r.status != http.StatusOK || strings.Join(strings.Fields(string(r.body)), "") != `{"b":[1,2]}` {
		t.Fatalf("wait form: %d %s", r.status, r.body)
	}
	// ... and the 202 check-status payload when it does not.
	r = do(t, "POST", api+"/orchestrators/Waiter?timeout=0.5&pollingInterval=0.1", "")
	expect(t, r, http.StatusAccepted, "")
	if decode[checkStatus](t, r.body).StatusQueryGetURI == "" {
		t.Fatalf("wait form timeout: %s", r.body)
	}
}

func TestManagementStatusCodes(t *testing.T) {
	p, dir := testApp(t)
	api := p.base + "/api/durabletask/instances/"

	w := startVia(t, p.base, "Waiter", "")
	waitRuntimeStatus(t, p.base, w.ID, "Running")
	r := do(t, "GET", api+w.ID, "")
	if r.status != http.StatusAccepted || r.header.Get("Location") == "" || r.header.Get("Retry-After") != "5" {
		t.Fatalf("running status: %d %v", r.status, r.header)
	}
	expect(t, do(t, "GET", api+"nobody", ""), http.StatusNotFound, "nobody")
	expect(t, do(t, "GET", api+"%40x", ""), http.StatusBadRequest, "@")

	// raiseEvent: 400 for non-JSON data, 202, then 410 once finished, 404 unknown.
	req, _ := http.NewRequest("POST", api+w.ID+"/raiseEvent/Go", strings.NewReader("plain text"))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("non-JSON event: %d", resp.StatusCode)
	}
	expect(t, do(t, "POST", api+w.ID+"/raiseEvent/Go", `{"ok":true}`), http.StatusAccepted, "")
	st := waitRuntimeStatus(t, p.base, w.ID, "Completed")
	if string(st.Output) != `{"ok":true}` {
		t.Fatalf("output %s", st.Output)
	}
	expect(t, do(t, "POST", api+w.ID+"/raiseEvent/Go", `1`), http.StatusGone, w.ID)
	expect(t, do(t, "POST", api+"nobody/raiseEvent/Go", `1`), http.StatusNotFound, "nobody")
	expect(t, do(t, "POST", api+w.ID+"/terminate?reason=late", ""), http.StatusGone, "Completed")

	// suspend, resume, terminate.
	s := startVia(t, p.base, "Waiter", "")
	waitRuntimeStatus(t, p.base, s.ID, "Running")
	expect(t, do(t, "POST", api+s.ID+"/suspend?reason=pause", ""), http.StatusAccepted, "")
	waitRuntimeStatus(t, p.base, s.ID, "Suspended")
	expect(t, do(t, "POST", api+s.ID+"/resume?reason=go", ""), http.StatusAccepted, "")
	waitRuntimeStatus(t, p.base, s.ID, "Running")
	expect(t, do(t, "POST", api+s.ID+"/terminate?reason=enough", ""), http.StatusAccepted, "")
	st = waitRuntimeStatus(t, p.base, s.ID, "Terminated")
	if string(st.Output) != `"enough"` {
		t.Fatalf("terminated output %s", st.Output)
	}
	expect(t, do(t, "POST", api+"nobody/suspend", ""), http.StatusNotFound, "nobody")
	expect(t, do(t, "POST", api+s.ID+"/explode", ""), http.StatusNotFound, "explode")
	expect(t, do(t, "PUT", api+s.ID+"/terminate", ""), http.StatusMethodNotAllowed, "PUT")

	// A failure, 500 on request, then rewind re-runs just the failed step.
	f := startVia(t, p.base, "Flaky", "")
	st = waitRuntimeStatus(t, p.base, f.ID, "Failed")
	if !strings.Contains(string(st.Output), "not healed yet") {
		t.Fatalf("failed output %s", st.Output)
	}
	if r := do(t, "GET", api+f.ID+"?returnInternalServerErrorOnFailure=true", ""); r.status != http.StatusInternalServerError {
		t.Fatalf("returnInternalServerErrorOnFailure: %d", r.status)
	}
	expect(t, do(t, "POST", api+w.ID+"/rewind", ""), http.StatusGone, "Completed")
	r2 := startVia(t, p.base, "Waiter", "")
	waitRuntimeStatus(t, p.base, r2.ID, "Running")
	expect(t, do(t, "POST", api+r2.ID+"/rewind", ""), http.StatusPreconditionFailed, "only failed")
	if err := os.WriteFile(filepath.Join(dir, "heal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	expect(t, do(t, "POST", api+f.ID+"/rewind?reason=fixed", ""), http.StatusAccepted, "")
	st = waitRuntimeStatus(t, p.base, f.ID, "Completed")
	if string(st.Output) != `"done before, healed"` {
		t.Fatalf("rewound output %s", st.Output)
	}
	runs, _ := os.ReadFile(filepath.Join(dir, "runs.log"))
	if strings.Count(string(runs), "before") != 1 {
		t.Fatalf("the successful step ran again on rewind: %q", runs)
	}

	// restart with a new ID and with the same ID.
	e := startVia(t, p.base, "Echo", `"again"`)
	waitRuntimeStatus(t, p.base, e.ID, "Completed")
	r = do(t, "POST", api+e.ID+"/restart", "")
	expect(t, r, http.StatusAccepted, "")
	if n := decode[checkStatus](t, r.body); n.ID == e.ID || waitRuntimeStatus(t, p.base, n.ID, "Completed").Output == nil {
		t.Fatalf("restart with a new ID: %s", r.body)
	}
	r = do(t, "POST", api+e.ID+"/restart?restartWithNewInstanceId=false", "")
	expect(t, r, http.StatusAccepted, "")
	if n := decode[checkStatus](t, r.body); n.ID != e.ID {
		t.Fatalf("restart with the same ID: %s", r.body)
	}
	waitRuntimeStatus(t, p.base, e.ID, "Completed")
	expect(t, do(t, "POST", api+r2.ID+"/restart?restartWithNewInstanceId=false", ""), http.StatusConflict, r2.ID)

	// purge one: 409 while running, 200 when finished, then 404.
	expect(t, do(t, "DELETE", api+r2.ID, ""), http.StatusConflict, "terminate")
	r = do(t, "DELETE", api+e.ID, "")
	if r.status != http.StatusOK || strings.Join(strings.Fields(string(r.body)), "") != `{"instancesDeleted":1}` {
		t.Fatalf("purge: %d %s", r.status, r.body)
	}
	expect(t, do(t, "GET", api+e.ID, ""), http.StatusNotFound, e.ID)
	expect(t, do(t, "DELETE", api+e.ID, ""), http.StatusNotFound, e.ID)
}

func TestManagementListAndPurgeMany(t *testing.T) {
	p, _ := testApp(t)
	api := p.base + "/api/durabletask/instances"
	begin := time.Now().UTC().Add(-time.Second).Format(time.RFC3339)
	for i := 0; i < 5; i++ {
		cs := startVia(t, p.base, "Echo/batch-"+string(rune('a'+i)), `"x"`)
		waitRuntimeStatus(t, p.base, cs.ID, "Completed")
	}
	w := startVia(t, p.base, "Waiter/other-1", "")
	waitRuntimeStatus(t, p.base, w.ID, "Running")

	// Paging with the continuation header; omitted on the last page.
	var ids []string
	token := ""
	for pages := 0; ; pages++ {
		req, _ := http.NewRequest("GET", api+"?top=2&instanceIdPrefix=batch-&showInput=false", nil)
		if token != "" {
			req.Header.Set("x-ms-continuation-token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page []statusPayload
		if resp.StatusCode != 200 {
			t.Fatalf("list: %d", resp.StatusCode)
		}
		b := readAll(t, resp)
		page = decode[[]statusPayload](t, b)
		for _, st := range page {
			ids = append(ids, st.InstanceID)
			if string(st.Input) != "null" {
				t.Errorf("showInput=false returned input %s", st.Input)
			}
		}
		token = resp.Header.Get("x-ms-continuation-token")
		if token == "" {
			break
		}
		if pages > 10 {
			t.Fatal("paging never ends")
		}
	}
	if strings.Join(ids, ",") != "batch-a,batch-b,batch-c,batch-d,batch-e" {
		t.Fatalf("listed %v", ids)
	}
	r := do(t, "GET", api+"?runtimeStatus=Running,Pending&createdTimeFrom="+begin, "")
	list := decode[[]statusPayload](t, r.body)
	if len(list) != 1 || list[0].InstanceID != "other-1" {
		t.Fatalf("status filter: %s", r.body)
	}
	for _, bad := range []struct{ query, mention string }{
		{"runtimeStatus=Sleeping", "Sleeping"},
		{"createdTimeFrom=yesterday", "createdTimeFrom"},
		{"top=0", "top"},
		{"top=lots", "top"},
	} {
		expect(t, do(t, "GET", api+"?"+bad.query, ""), http.StatusBadRequest, bad.mention)
	}

	expect(t, do(t, "DELETE", api, ""), http.StatusBadRequest, "createdTimeFrom")
	expect(t, do(t, "DELETE", api+"?createdTimeFrom="+begin+"&runtimeStatus=Running", ""), http.StatusBadRequest, "Running")
	r = do(t, "DELETE", api+"?createdTimeFrom="+begin+"&instanceIdPrefix=batch-", "")
	if r.status != http.StatusOK || strings.Join(strings.Fields(string(r.body)), "") != `{"instancesDeleted":5}` {
		t.Fatalf("purge many: %d %s", r.status, r.body)
	}
	expect(t, do(t, "DELETE", api+"?createdTimeFrom="+begin+"&instanceIdPrefix=batch-", ""), http.StatusNotFound, "no finished instance")
	if r := do(t, "GET", api+"/other-1", ""); r.status != http.StatusAccepted {
		t.Fatalf("the running instance was touched: %d", r.status)
	}
}
