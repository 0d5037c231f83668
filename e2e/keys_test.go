package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

func TestFunctionKeyInStandaloneMode(t *testing.T) {
	p := startApp(t, binary(t, "./e2e/testapp"), appEnv(t, azuritetest.HubName(t), "DURABLE_FUNCTION_KEY=s3cret", "CRASHTEST_DIR="+t.TempDir())...)
	api := p.base + "/api/durabletask"

	// With the key in the code parameter: works, and the links carry it.
	cs := startVia(t, p.base, "Echo?code=s3cret", `1`)
	if !strings.Contains(cs.StatusQueryGetURI, "code=s3cret") {
		t.Fatalf("links lose the key: %s", cs.StatusQueryGetURI)
	}
	waitRuntimeStatus(t, p.base, cs.ID+"?code=s3cret", "Completed")

	// With the key in the header.
	req, _ := http.NewRequest("GET", api+"/instances/"+cs.ID, nil)
	req.Header.Set("x-functions-key", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("header key: %d", resp.StatusCode)
	}

	// Missing or wrong: 401, and the answer is the same for an existing and
	// a missing instance, so nothing is revealed.
	var bodies []string
	for _, url := range []string{
		api + "/instances/" + cs.ID,
		api + "/instances/" + cs.ID + "?code=wrong",
		api + "/instances/no-such-instance",
		p.base + "/api/orchestrators/Echo",
	} {
		r := do(t, "GET", url, "")
		if r.status != http.StatusUnauthorized {
			t.Fatalf("%s: %d %s", url, r.status, r.body)
		}
		bodies = append(bodies, string(r.body))
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Fatalf("401 bodies differ: %q vs %q", b, bodies[0])
		}
	}
	if strings.Contains(bodies[0], cs.ID) {
		t.Fatalf("401 body reveals the instance: %s", bodies[0])
	}
}
