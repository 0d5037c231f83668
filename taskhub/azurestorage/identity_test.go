package azurestorage

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// fakeCredential is a TokenCredential that hands out a fixed token and
// records the scopes it was asked for.
type fakeCredential struct {
	token string
	mu    sync.Mutex
	asked []string
}

func (f *fakeCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, opts.Scopes...)
	return azcore.AccessToken{Token: f.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// recorded is one request a fake service saw.
type recorded struct {
	method, path, auth, date string
}

// fakeService is an httptest server standing in for one storage service:
// it records each request and answers with status.
type fakeService struct {
	*httptest.Server
	mu   sync.Mutex
	seen []recorded
}

func newFakeService(t *testing.T, tls bool, status func(*http.Request) int) *fakeService {
	f := &fakeService{}
	start := httptest.NewServer
	if tls {
		start = httptest.NewTLSServer
	}
	f.Server = start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, recorded{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("x-ms-date")})
		f.mu.Unlock()
		w.WriteHeader(status(r))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeService) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.seen...)
}

// TestStoreWithTokenCredential builds a Store from three endpoints (each
// its own server, https and loopback http) and a token credential, and
// checks that real SDK calls of every service reach their own endpoint with
// the bearer token.
func TestStoreWithTokenCredential(t *testing.T) {
	for _, tls := range []bool{true, false} {
		name := "http"
		if tls {
			name = "https"
		}
		t.Run(name, func(t *testing.T) { testStoreWithTokenCredential(t, tls) })
	}
}

func testStoreWithTokenCredential(t *testing.T, tls bool) {
	created := func(*http.Request) int { return http.StatusCreated }
	blob := newFakeService(t, tls, created)
	queue := newFakeService(t, tls, created)
	table := newFakeService(t, tls, func(r *http.Request) int {
		if strings.HasSuffix(r.URL.Path, "/$batch") {
			return http.StatusBadRequest // the request is what is checked
		}
		return http.StatusNoContent
	})
	cred := &fakeCredential{token: "tok-123"}
	s, err := New(Options{
		HubName:    "IdentHub",
		Credential: cred,
		Endpoints:  Endpoints{Blob: blob.URL + "/acct/", Queue: queue.URL + "/acct", Table: table.URL + "/acct"},
		// httptest's TLS servers share one certificate, which this client trusts.
		HTTPClient: blob.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.tableService.CreateTable(ctx, s.HistoryTableName(), nil); err != nil {
		t.Errorf("create table: %v", err)
	}
	if _, err := s.workItems.Create(ctx, nil); err != nil {
		t.Errorf("create queue: %v", err)
	}
	if _, err := s.appLease.Create(ctx, nil); err != nil {
		t.Errorf("create container: %v", err)
	}
	_, batchErr := s.rest.submitBatch(ctx, s.HistoryTableName(), []batchOp{{kind: opDelete, pk: "p", rk: "r", ifMatch: "*"}})
	if batchErr == nil {
		t.Errorf("batch answered 400 returned no error")
	}

	want := map[*fakeService][]string{
		blob:  {"PUT /acct/identhub-applease"},
		queue: {"PUT /acct/identhub-workitems"},
		table: {"POST /acct/Tables", "POST /acct/$batch"},
	}
	for svc, paths := range want {
		got := svc.requests()
		if len(got) != len(paths) {
			t.Errorf("server %s: got %d requests %v, want %v", svc.URL, len(got), got, paths)
			continue
		}
		for i, r := range got {
			if r.method+" "+r.path != paths[i] {
				t.Errorf("server %s request %d: %s %s, want %s", svc.URL, i, r.method, r.path, paths[i])
			}
			if r.auth != "Bearer tok-123" {
				t.Errorf("%s %s: Authorization %q, want %q", r.method, r.path, r.auth, "Bearer tok-123")
			}
			// The raw $batch pipeline stamps x-ms-date as the SharedKeyLite
			// signer did; the SDK clients do not need it with a token.
			if strings.HasSuffix(r.path, "/$batch") && r.date == "" {
				t.Errorf("%s %s: no x-ms-date", r.method, r.path)
			}
		}
	}
	cred.mu.Lock()
	defer cred.mu.Unlock()
	if len(cred.asked) == 0 {
		t.Fatal("credential was never asked for a token")
	}
	for _, sc := range cred.asked {
		if sc != StorageScope {
			t.Errorf("token scope %q, want %q", sc, StorageScope)
		}
	}
}

func TestValidateEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"https://acct.blob.core.windows.net/", "https://acct.blob.core.windows.net", true},
		{"https://127.0.0.1:10000/devstoreaccount1", "https://127.0.0.1:10000/devstoreaccount1", true},
		{"http://127.0.0.1:10001/devstoreaccount1", "http://127.0.0.1:10001/devstoreaccount1", true},
		{"http://localhost:10002", "http://localhost:10002", true},
		{"http://[::1]:10002", "http://[::1]:10002", true},
		{"http://acct.blob.core.windows.net", "", false},
		{"acct.blob.core.windows.net", "", false},
		{"/relative/path", "", false},
		{"ftp://acct.blob.core.windows.net", "", false},
		{"https://acct.blob.core.windows.net?sv=1", "", false},
		{"https://", "", false},
		{"://bad", "", false},
		{"", "", false},
	} {
		got, err := ValidateEndpoint(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ValidateEndpoint(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadEndpoint) {
			t.Errorf("ValidateEndpoint(%q): error %v does not wrap ErrBadEndpoint", tc.in, err)
		}
	}
}

func TestNewWithCredentialErrors(t *testing.T) {
	good := PublicEndpoints("acct")
	cred := &fakeCredential{token: "t"}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"connection string too", Options{HubName: "Hub1", Credential: cred, Endpoints: good, ConnectionString: "UseDevelopmentStorage=true"}, "both a connection string and a credential"},
		{"no blob", Options{HubName: "Hub1", Credential: cred, Endpoints: Endpoints{Queue: good.Queue, Table: good.Table}}, "blob endpoint"},
		{"http queue", Options{HubName: "Hub1", Credential: cred, Endpoints: Endpoints{Blob: good.Blob, Queue: "http://acct.queue.core.windows.net", Table: good.Table}}, "queue endpoint"},
		{"bad table", Options{HubName: "Hub1", Credential: cred, Endpoints: Endpoints{Blob: good.Blob, Queue: good.Queue, Table: "table"}}, "table endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := New(Options{HubName: "Hub1", Credential: cred, Endpoints: good}); err != nil {
		t.Errorf("New with public endpoints: %v", err)
	}
	if got := good.Table; got != "https://acct.table.core.windows.net" {
		t.Errorf("PublicEndpoints table = %q", got)
	}
}
