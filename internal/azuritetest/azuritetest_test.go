package azuritetest

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

func TestHubName(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{2,44}$`)
	seen := map[string]bool{}
	for _, name := range []string{"short", "a/b c-d_e", strings.Repeat("VeryLongSubtestName", 5), "ünïcode"} {
		t.Run(name, func(t *testing.T) {
			for range 3 {
				h := HubName(t)
				if !valid.MatchString(h) {
					t.Fatalf("HubName = %q, not a valid task hub name", h)
				}
				if seen[h] {
					t.Fatalf("HubName returned %q twice", h)
				}
				seen[h] = true
			}
		})
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/go.mod"); err != nil {
		t.Fatalf("ModuleRoot = %q without go.mod: %v", root, err)
	}
}

// endpointAnswers checks that the table endpoint of a connection string
// answers HTTP.
func endpointAnswers(t *testing.T, cs string) {
	t.Helper()
	m := regexp.MustCompile(`TableEndpoint=([^;]+)`).FindStringSubmatch(cs)
	if m == nil {
		t.Fatalf("no TableEndpoint in %q", cs)
	}
	resp, err := http.Get(m[1] + "?comp=list")
	if err != nil {
		t.Fatalf("table endpoint %s: %v", m[1], err)
	}
	resp.Body.Close()
	if resp.StatusCode == 0 {
		t.Fatalf("table endpoint %s gave no status", m[1])
	}
}

func TestConnectionStringShared(t *testing.T) {
	first := ConnectionString(t)
	if second := ConnectionString(t); second != first {
		t.Fatalf("second call returned %q, want the shared %q", second, first)
	}
	if os.Getenv(EnvStorage) == "" && !strings.Contains(first, "AccountName=devstoreaccount1;") {
		t.Fatalf("connection string %q lacks the development account", first)
	}
	endpointAnswers(t, first)
}

func TestConnectionStringFromEnv(t *testing.T) {
	t.Setenv(EnvStorage, "UseDevelopmentStorage=true")
	if got := ConnectionString(t); got != "UseDevelopmentStorage=true" {
		t.Fatalf("ConnectionString = %q, want the environment value", got)
	}
}

func TestStartStop(t *testing.T) {
	s, err := Start(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	endpointAnswers(t, s.ConnectionString())
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("data directory %s still exists after Stop (err %v)", dir, err)
	}
	if answers(context.Background(), &http.Client{}, s.TablePort) {
		t.Fatalf("table port %d still answers after Stop", s.TablePort)
	}
}
