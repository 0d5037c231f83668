package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

// TestIdentity runs the sample against storage reached only through a
// Microsoft Entra token: a private Azurite with OAuth over HTTPS whose only
// account has a random key, and a loopback managed-identity endpoint that
// speaks the App Service protocol, so the app's real azidentity
// ManagedIdentityCredential path fetches the tokens.
func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestCerts(t, dir)
	az := startOAuthAzurite(t, dir, caFile, certFile, keyFile)
	bin := binary(t, "./e2e/testapp")
	root := appRootWithoutLocalSettings(t)

	// Only the random key signs requests here; the well-known development
	// key is refused, so the app (which has no key) can only get in with
	// bearer tokens.
	sharedKeyCall := func(key string) error {
		cred, err := azqueue.NewSharedKeyCredential("devstoreaccount1", key)
		if err != nil {
			t.Fatal(err)
		}
		httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: az.ca}}}
		qsvc, err := azqueue.NewServiceClientWithSharedKeyCredential(az.endpoint(az.queue), cred,
			&azqueue.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: httpClient, Retry: policy.RetryOptions{MaxRetries: -1}}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = qsvc.GetServiceProperties(t.Context(), nil)
		return err
	}
	if err := sharedKeyCall(az.key); err != nil {
		t.Fatalf("a request signed with the account's own key: %v", err)
	}
	var respErr *azcore.ResponseError
	if err := sharedKeyCall(wellKnownAccountKey); !errors.As(err, &respErr) || respErr.StatusCode/100 != 4 {
		t.Fatalf("a request signed with the well-known key: %v, want it refused (4xx)", err)
	}

	env := func(hub, identityEndpoint, identityHeader string, extra ...string) []string {
		return append([]string{
			// An empty connection string counts as unset (see funcapp's
			// loadStorage); it hides one the parent process may have.
			"AzureWebJobsStorage=",
			"AzureWebJobsStorage__blobServiceUri=" + az.endpoint(az.blob),
			"AzureWebJobsStorage__queueServiceUri=" + az.endpoint(az.queue),
			"AzureWebJobsStorage__tableServiceUri=" + az.endpoint(az.table),
			"AzureWebJobsStorage__credential=managedidentity",
			"IDENTITY_ENDPOINT=" + identityEndpoint,
			"IDENTITY_HEADER=" + identityHeader,
			"SSL_CERT_FILE=" + caFile,
			"DURABLE_TASK_HUB=" + hub,
			"DURABLE_MAX_POLL_INTERVAL=500ms",
		}, extra...)
	}

	sampleOn := func(t *testing.T, p *process) {
		t.Helper()
		waitReady(t, p)
		runSample(t, p.base)
	}

	t.Run("SystemAssigned", func(t *testing.T) {
		mi := newIdentityEndpoint(t, "s3cret-"+rand.Text())
		p := launchIn(t, bin, root, env(azuritetest.HubName(t), mi.url, mi.secret)...)
		sampleOn(t, p)
		reqs := mi.requests()
		if len(reqs) == 0 {
			t.Fatal("the managed-identity endpoint was never called")
		}
		for _, r := range reqs {
			if r.status != http.StatusOK || r.clientID != "" {
				t.Errorf("token request %+v: want a system-assigned request (no client_id) that succeeded", r)
			}
		}
		t.Logf("%d token requests", len(reqs))
	})

	t.Run("UserAssigned", func(t *testing.T) {
		mi := newIdentityEndpoint(t, "s3cret-"+rand.Text())
		const clientID = "6c1f9a52-3e4b-4d0a-9b1e-2f7c8d5a4e31"
		p := launchIn(t, bin, root, env(azuritetest.HubName(t), mi.url, mi.secret, "AzureWebJobsStorage__clientId="+clientID)...)
		sampleOn(t, p)
		reqs := mi.requests()
		if len(reqs) == 0 {
			t.Fatal("the managed-identity endpoint was never called")
		}
		for _, r := range reqs {
			if r.status != http.StatusOK || r.clientID != clientID {
				t.Errorf("token request %+v: want client_id=%s that succeeded", r, clientID)
			}
		}
		t.Logf("%d token requests", len(reqs))
	})

	t.Run("WrongIdentityHeader", func(t *testing.T) {
		mi := newIdentityEndpoint(t, "s3cret-"+rand.Text())
		hub := azuritetest.HubName(t)
		p := launchIn(t, bin, root, env(hub, mi.url, "wrong")...)
		waitOutput(t, p, "task hub not ready; retrying", 30*time.Second)
		var line string
		for _, l := range strings.Split(p.out.String(), "\n") {
			if strings.Contains(l, "task hub not ready; retrying") {
				line = l
				break
			}
		}
		t.Logf("retry log line: %s", line)
		for _, want := range []string{"ManagedIdentityCredential", "401", "X-IDENTITY-HEADER"} {
			if !strings.Contains(line, want) {
				t.Errorf("retry log line %q does not mention %q", line, want)
			}
		}
		client := &http.Client{Timeout: 20 * time.Second}
		resp, err := client.Post(p.base+"/api/orchestrators/Orchestrator", "application/json", nil)
		if err != nil {
			t.Fatalf("start with a refused identity: %v (want a prompt 503)", err)
		}
		defer resp.Body.Close()
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("start: status %d, body not a JSON error: %v", resp.StatusCode, err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || e.Error.Code != "StorageUnavailable" || !strings.Contains(e.Error.Message, hub) {
			t.Fatalf("start: %d %+v, want 503 StorageUnavailable naming the hub", resp.StatusCode, e.Error)
		}
		for _, r := range mi.requests() {
			if r.status != http.StatusUnauthorized {
				t.Errorf("token request %+v: want it refused with 401", r)
			}
		}
	})
}

// appRootWithoutLocalSettings copies the module's app definition (host.json
// and every function.json) into a new directory. In standalone mode the app
// fills settings missing from its environment from the root's
// local.settings.json, whose AzureWebJobsStorage connection string would
// otherwise sit next to the identity settings.
func appRootWithoutLocalSettings(t *testing.T) string {
	t.Helper()
	src, dst := moduleRoot(t), t.TempDir()
	copyFile := func(rel string) {
		b, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("host.json")
	fns, err := filepath.Glob(filepath.Join(src, "*", "function.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) == 0 {
		t.Fatalf("no function.json under %s", src)
	}
	for _, f := range fns {
		rel, err := filepath.Rel(src, f)
		if err != nil {
			t.Fatal(err)
		}
		copyFile(rel)
	}
	return dst
}

// wellKnownAccountKey is Azurite's published development key, which the
// private Azurite must refuse.
const wellKnownAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// writeTestCerts makes a CA and a server certificate for 127.0.0.1 signed
// by it (EC P-256) and writes them as PEM files in dir.
func writeTestCerts(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "durable e2e test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey := newKey()
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKeyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server.key", "PRIVATE KEY", srvKeyDER)
}

// oauthAzurite is a private Azurite that accepts bearer tokens over HTTPS.
type oauthAzurite struct {
	blob, queue, table int
	ca                 *x509.CertPool // trusts Azurite's certificate
	key                string         // the account's (random) key
}

func (a oauthAzurite) endpoint(port int) string {
	return fmt.Sprintf("https://127.0.0.1:%d/devstoreaccount1", port)
}

// startOAuthAzurite starts Azurite with --oauth basic over HTTPS, with a
// single account devstoreaccount1 whose key is random (so no well-known key
// can authorize a request), and waits until all three services answer over
// TLS trusting only the test CA.
func startOAuthAzurite(t *testing.T, dir, caFile, certFile, keyFile string) oauthAzurite {
	t.Helper()
	root := moduleRoot(t)
	script := filepath.Join(root, "node_modules", "azurite", "dist", "src", "azurite.js")
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("Azurite is not installed (npm ci): %v", err)
	}
	port := func() int {
		_, p, err := net.SplitHostPort(freeAddr(t))
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := oauthAzurite{blob: port(), queue: port(), table: port(), ca: x509.NewCertPool()}
	key := make([]byte, 64)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	a.key = base64.StdEncoding.EncodeToString(key)
	data := filepath.Join(dir, "azurite")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script,
		"--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
		"--blobPort", strconv.Itoa(a.blob), "--queuePort", strconv.Itoa(a.queue), "--tablePort", strconv.Itoa(a.table),
		"--location", data, "--silent", "--disableTelemetry", "--skipApiVersionCheck",
		"--oauth", "basic", "--cert", certFile, "--key", keyFile)
	cmd.Dir = data
	cmd.Env = append(os.Environ(), "AZURITE_ACCOUNTS=devstoreaccount1:"+a.key)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("Azurite output:\n%s", out.String())
		}
	})

	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if !a.ca.AppendCertsFromPEM(caPEM) {
		t.Fatal("test CA: no certificate in PEM")
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: a.ca}}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for _, probe := range []struct {
		port int
		path string
	}{{a.blob, "?comp=list"}, {a.queue, "?comp=list"}, {a.table, "/Tables"}} {
		port := probe.port
		for {
			// Up means an answer over verified TLS; without credentials
			// Azurite answers 403.
			resp, err := client.Get(a.endpoint(port) + probe.path)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden {
					t.Fatalf("Azurite on port %d answered an anonymous request %d, want 403 (OAuth on, no anonymous access)", port, resp.StatusCode)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Azurite did not answer over HTTPS on port %d within 30s: %v\n%s", port, err, out.String())
			}
			select {
			case <-exited:
				t.Fatalf("Azurite exited during start-up:\n%s", out.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return a
}

// tokenRequest is one request the managed-identity endpoint got.
type tokenRequest struct {
	clientID string
	status   int
}

// identityEndpoint is a loopback App Service managed-identity endpoint
// (IDENTITY_ENDPOINT / IDENTITY_HEADER) that hands out tokens Azurite's
// basic OAuth validation accepts.
type identityEndpoint struct {
	url, secret string

	mu   sync.Mutex
	reqs []tokenRequest
}

func newIdentityEndpoint(t *testing.T, secret string) *identityEndpoint {
	t.Helper()
	mi := &identityEndpoint{secret: secret}
	srv := httptest.NewServer(http.HandlerFunc(mi.serve))
	t.Cleanup(srv.Close)
	mi.url = srv.URL + "/msi/token"
	return mi
}

func (mi *identityEndpoint) requests() []tokenRequest {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	return append([]tokenRequest(nil), mi.reqs...)
}

func (mi *identityEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	status, body := http.StatusOK, map[string]any{}
	switch {
	case r.Header.Get("X-IDENTITY-HEADER") != mi.secret:
		status = http.StatusUnauthorized
		body["error"] = map[string]string{"code": "Unauthorized", "message": "X-IDENTITY-HEADER does not match the identity secret"}
	case r.Method != http.MethodGet || q.Get("api-version") != "2019-08-01" || q.Get("resource") != "https://storage.azure.com":
		status = http.StatusBadRequest
		body["error"] = map[string]string{"code": "BadRequest", "message": fmt.Sprintf("unexpected %s %s", r.Method, r.URL.RequestURI())}
	default:
		now := time.Now()
		exp := now.Add(time.Hour)
		body["access_token"] = testJWT(now, exp)
		body["expires_on"] = strconv.FormatInt(exp.Unix(), 10)
		body["resource"] = "https://storage.azure.com"
		body["token_type"] = "Bearer"
		if id := q.Get("client_id"); id != "" {
			body["client_id"] = id
		}
	}
	mi.mu.Lock()
	mi.reqs = append(mi.reqs, tokenRequest{clientID: q.Get("client_id"), status: status})
	mi.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// testJWT returns an unsigned-in-effect JWT (Azurite's basic mode does not
// check signatures) with the issuer, audience and times it does check.
func testJWT(now, exp time.Time) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	header := enc(map[string]string{"alg": "RS256", "typ": "JWT"})
	payload := enc(map[string]any{
		"aud": "https://storage.azure.com",
		"iss": "https://sts.windows.net/" + tenant + "/",
		"iat": now.Add(-time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": exp.Unix(),
		"tid": tenant,
		"oid": "0b6c5c5e-2f6e-4c1a-9d0e-8f1f2a3b4c5d",
	})
	return header + "." + payload + "." + base64.RawURLEncoding.EncodeToString([]byte("not-a-signature"))
}
