package hostemulator

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

// testHandlerBin is the built ./internal/testhandler binary.
var testHandlerBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hostemulator-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testHandlerBin = filepath.Join(dir, "testhandler")
	goTool := "go"
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			goTool = p
		}
	}
	cmd := exec.Command(goTool, "build", "-o", testHandlerBin, "./internal/testhandler")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the test handler: %v\n%s", err, out)
		return 1
	}
	return azuritetest.Run(m) // the queue listener tests use Azurite
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
