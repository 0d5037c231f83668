package faultproxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
)

func TestMain(m *testing.M) { azuritetest.Main(m) }

// received is one request as the backend saw it.
type received struct {
	method, uri, header, body string
	at                        time.Time
}

// recorder is a backend that records every request and answers 201 with a
// header and a body.
type recorder struct {
	mu   sync.Mutex
	reqs []received
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, received{r.Method, r.RequestURI, r.Header.Get("x-ms-test"), string(b), time.Now()})
	rec.mu.Unlock()
	w.Header().Set("ETag", `W/"datetime'x'"`)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, "answer to "+r.Method)
}

func (rec *recorder) requests() []received {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.reqs)
}

// newProxy starts a proxy in front of a recording backend.
func newProxy(t *testing.T, opts Options) (*Proxy, string, *recorder) {
	t.Helper()
	rec := &recorder{}
	backend := httptest.NewServer(rec)
	t.Cleanup(backend.Close)
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	front, err := p.Listen(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	return p, front, rec
}

// call sends one request through the proxy with a fresh connection.
func call(t *testing.T, ctx context.Context, method, url, body string, header map[string]string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func TestForwardsFaithfullyWhenOff(t *testing.T) {
	p, front, rec := newProxy(t, Options{Rates: Rates{ServerBusy: 1}, Seed: 1})
	uri := "/devstoreaccount1/Tbl(PartitionKey='a%2Fb',RowKey='')?comp=x&$select=A"
	resp, body, err := call(t, t.Context(), "MERGE", front+uri, `{"A":1}`, map[string]string{"x-ms-test": "v"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || body != "answer to MERGE" || resp.Header.Get("ETag") != `W/"datetime'x'"` {
		t.Errorf("answer: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	got := rec.requests()
	want := []received{{method: "MERGE", uri: uri, header: "v", body: `{"A":1}`}}
	if len(got) != 1 || got[0].method != want[0].method || got[0].uri != want[0].uri || got[0].header != "v" || got[0].body != want[0].body {
		t.Errorf("backend saw %+v, want %+v", got, want)
	}
	if s := p.Stats(); s.Calls != 1 || s.Forwarded != 1 || s.Total() != 0 {
		t.Errorf("stats: %v", s)
	}
}

func TestEachFaultKind(t *testing.T) {
	const delay = 300 * time.Millisecond
	tests := []struct {
		name      string
		rates     Rates
		method    string
		accept    string
		timeout   time.Duration
		wantErr   bool   // the caller gets no HTTP answer
		wantCode  int    // else this status
		wantBody  string // and a body containing this
		forwarded int    // requests that reach the backend
		kind      Kind
		faulted   bool
	}{
		{name: "503 to a table call", rates: Rates{ServerBusy: 1}, method: "POST", accept: "application/json;odata=minimalmetadata",
			wantCode: 503, wantBody: `"code":"ServerBusy"`, kind: ServerBusy, faulted: true},
		{name: "503 to a queue call", rates: Rates{ServerBusy: 1}, method: "GET", accept: "application/xml",
			wantCode: 503, wantBody: "<Code>ServerBusy</Code>", kind: ServerBusy, faulted: true},
		{name: "reset", rates: Rates{Reset: 1}, method: "PUT", wantErr: true, kind: Reset, faulted: true},
		{name: "lost response of a write", rates: Rates{LostResponse: 1}, method: "DELETE", wantErr: true, forwarded: 1,
			kind: LostResponse, faulted: true},
		{name: "lost response of a batch POST", rates: Rates{LostResponse: 1}, method: "POST", wantErr: true, forwarded: 1,
			kind: LostResponse, faulted: true},
		{name: "reads keep their answer", rates: Rates{LostResponse: 1}, method: "GET", wantCode: 201, wantBody: "answer to GET",
			forwarded: 1},
		{name: "timeout past the caller's deadline", rates: Rates{Timeout: 1}, method: "PUT", timeout: 50 * time.Millisecond,
			wantErr: true, forwarded: 1, kind: Timeout, faulted: true},
		{name: "timeout within a patient caller's deadline", rates: Rates{Timeout: 1}, method: "PUT", timeout: 10 * time.Second,
			wantCode: 201, wantBody: "answer to PUT", forwarded: 1, kind: Timeout, faulted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, front, rec := newProxy(t, Options{Rates: tt.rates, Seed: 7, Delay: delay})
			p.SetEnabled(true)
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			began := time.Now()
			resp, body, err := call(t, ctx, tt.method, front+"/acct/q/messages", "payload", map[string]string{"Accept": tt.accept})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got an answer %d %q, want a failed call", resp.StatusCode, body)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != tt.wantCode || !strings.Contains(body, tt.wantBody) {
					t.Errorf("answer %d %q, want %d with %q", resp.StatusCode, body, tt.wantCode, tt.wantBody)
				}
				if tt.wantCode == 503 && resp.Header.Get("x-ms-error-code") != "ServerBusy" {
					t.Errorf("503 without x-ms-error-code: %v", resp.Header)
				}
			}
			// A held call reaches the backend after the delay, even when
			// its caller has given up.
			deadline := time.Now().Add(5 * time.Second)
			for len(rec.requests()) < tt.forwarded && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond) // polling the backend's record
			}
			got := rec.requests()
			if len(got) != tt.forwarded {
				t.Fatalf("backend received %d requests, want %d", len(got), tt.forwarded)
			}
			if tt.kind == Timeout && tt.faulted && got[0].at.Sub(began) < delay {
				t.Errorf("held call reached the backend after %v, before the delay %v", got[0].at.Sub(began), delay)
			}
			if len(got) == 1 && got[0].body != "payload" {
				t.Errorf("forwarded body %q", got[0].body)
			}
			s := p.Stats()
			wantFaults := int64(0)
			if tt.faulted {
				wantFaults = 1
			}
			if s.Calls != 1 || s.Faults[tt.kind] != wantFaults || s.Total() != wantFaults {
				t.Errorf("stats %v, want 1 call and %d %s", s, wantFaults, tt.kind)
			}
		})
	}
}

func TestSwitchAtRunTime(t *testing.T) {
	p, front, rec := newProxy(t, Options{Rates: Rates{ServerBusy: 1}, Seed: 3})
	codes := func() int {
		resp, _, err := call(t, t.Context(), "GET", front+"/x", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	var got []int
	got = append(got, codes())
	p.SetEnabled(true)
	if !p.Enabled() {
		t.Error("Enabled() is false after SetEnabled(true)")
	}
	got = append(got, codes(), codes())
	p.SetEnabled(false)
	got = append(got, codes())
	if want := []int{201, 503, 503, 201}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if n := len(rec.requests()); n != 2 {
		t.Errorf("backend received %d requests, want 2", n)
	}
	if s := p.Stats(); s.Calls != 4 || s.Forwarded != 2 || s.Faults[ServerBusy] != 2 {
		t.Errorf("stats %v", s)
	}
}

// TestDecisionsAreSeeded draws many decisions: the same seed gives the same
// sequence, another seed another one, and each kind comes at about its rate
// (LostResponse only for writes).
func TestDecisionsAreSeeded(t *testing.T) {
	rates := Rates{ServerBusy: 0.05, Reset: 0.05, Timeout: 0.05, LostResponse: 0.1}
	draw := func(seed uint64) ([]int, map[Kind]int) {
		p, err := New(Options{Rates: rates, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		p.SetEnabled(true)
		var seq []int
		counts := map[Kind]int{}
		for i := range 20000 {
			method := "GET"
			if i%2 == 0 {
				method = "PUT"
			}
			k, ok := p.decide(method)
			if !ok {
				seq = append(seq, -1)
				continue
			}
			if k == LostResponse && method == "GET" {
				t.Fatalf("LostResponse chosen for a read")
			}
			seq = append(seq, int(k))
			counts[k]++
		}
		return seq, counts
	}
	a, counts := draw(42)
	b, _ := draw(42)
	c, _ := draw(43)
	if !slices.Equal(a, b) {
		t.Error("the same seed drew different faults")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds drew the same faults")
	}
	// Expected counts: 5% of 20000 for the first three, 10% of the 10000
	// writes for LostResponse. The seed is fixed, so this is exact for a
	// given implementation; the bounds only say "about".
	for _, k := range Kinds {
		if n := counts[k]; n < 700 || n > 1300 {
			t.Errorf("%s chosen %d times, want about 1000", k, n)
		}
	}
}

func TestOptionsAreValidated(t *testing.T) {
	for _, opts := range []Options{
		{Rates: Rates{ServerBusy: -0.1}},
		{Rates: Rates{Reset: 1.5}},
		{Rates: Rates{ServerBusy: 0.6, Timeout: 0.6}},
		{Delay: -time.Second},
	} {
		if _, err := New(opts); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("New(%+v) = %v, want ErrInvalidOptions", opts, err)
		}
	}
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Listen("127.0.0.1:10000"); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Listen without scheme = %v, want ErrInvalidOptions", err)
	}
}

// TestLostResponseOfATableInsert drives the Azure SDK through the proxy to
// Azurite: with every write's answer lost the SDK's insert fails after its
// retries, yet the entity was stored, and the retries met the stored row.
func TestLostResponseOfATableInsert(t *testing.T) {
	acct, err := azurestorage.ParseConnectionString(azuritetest.ConnectionString(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Rates: Rates{LostResponse: 1}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	front, err := p.Listen(acct.TableEndpoint) // its path is ignored

	if err != nil {
		t.Fatal(err)
	}
	cred, err := aztables.NewSharedKeyCredential(acct.Name, acct.Key)
	if err != nil {
		t.Fatal(err)
	}
	opts := &aztables.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: 2, RetryDelay: 10 * time.Millisecond}}}
	via, err := aztables.NewServiceClientWithSharedKey(front+"/"+acct.Name, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := aztables.NewServiceClientWithSharedKey(acct.TableEndpoint, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	table := azuritetest.HubName(t)
	if _, err := via.CreateTable(t.Context(), table, nil); err != nil {
		t.Fatalf("create table through the proxy with faults off: %v", err)
	}
	defer direct.DeleteTable(context.Background(), table, nil)
	p.SetEnabled(true)
	_, err = via.NewClient(table).AddEntity(t.Context(), []byte(`{"PartitionKey":"p","RowKey":"r","V":1}`), nil)
	if err == nil {
		t.Fatal("insert succeeded although every answer was lost")
	}
	p.SetEnabled(false)
	got, err := direct.NewClient(table).GetEntity(t.Context(), "p", "r", nil)
	if err != nil {
		t.Fatalf("the insert whose answer was lost did not commit: %v", err)
	}
	if !strings.Contains(string(got.Value), `"V":1`) {
		t.Errorf("stored entity %s", got.Value)
	}
	if s := p.Stats(); s.Faults[LostResponse] != 3 || s.Forwarded != 4 { // create + 3 tries of the insert
		t.Errorf("stats %v, want 3 lost responses of 4 forwarded calls", s)
	}
}
