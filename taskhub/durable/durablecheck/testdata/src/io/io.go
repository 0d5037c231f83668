package io

import (
	"database/sql"
	"errors"
	"fmt"
	"io/ioutil"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

var Env = durable.NewOrchestrator("Env", func(ctx *durable.Context, _ any) (string, error) {
	region := os.Getenv("REGION")      // want `^os.Getenv in orchestrator "Env": the environment can differ when the orchestrator replays .*; read it in an activity or pass it in the input`
	_, _ = os.LookupEnv("X")           // want `os.LookupEnv in orchestrator "Env": the environment`
	host, _ := os.Hostname()           // want `os.Hostname in orchestrator "Env": the environment`
	_ = os.Args                        // want `os.Args in orchestrator "Env"`
	data, err := os.ReadFile("config") // want `^os.ReadFile in orchestrator "Env": file and process I/O runs again on every replay .*; do it in an activity`
	if errors.Is(err, os.ErrNotExist) || os.IsNotExist(err) {
		return "", nil
	}
	f, _ := os.Open("x")        // want `os.Open in orchestrator "Env"`
	_ = f.Close()               // want `^\(\*os.File\).Close in orchestrator "Env": file and process I/O`
	_, _ = ioutil.ReadFile("y") // want `io/ioutil.ReadFile in orchestrator "Env"`
	_, _ = ioutil.ReadAll(strings.NewReader("pure"))
	_ = exec.Command("ls").Run() // want `^os/exec.Command in orchestrator "Env": it runs a process again` `\(\*os/exec.Cmd\).Run`
	return region + host + string(data), nil
})

var Net = durable.NewOrchestrator("Net", func(ctx *durable.Context, url string) (int, error) {
	resp, err := http.Get(url) // want `^net/http.Get in orchestrator "Net": an HTTP call runs again on every replay .*make it in an activity`
	if err != nil {
		return 0, err
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "application/json")
	_, _ = http.DefaultClient.Do(req) // want `net/http.DefaultClient in orchestrator "Net"` `\(\*net/http.Client\).Do`
	var rt http.RoundTripper
	_, _ = rt.RoundTrip(req)          // want `net/http.RoundTripper.RoundTrip in orchestrator "Net"`
	conn, _ := net.Dial("tcp", "x:1") // want `^net.Dial in orchestrator "Net": network I/O`
	_, _ = conn.Write(nil)            // want `net.Conn.Write in orchestrator "Net"`
	_, _ = net.LookupHost("x")        // want `net.LookupHost`
	_ = net.ParseIP("127.0.0.1")
	_ = net.JoinHostPort("h", "1")
	db, _ := sql.Open("x", "y") // want `^database/sql.Open in orchestrator "Net": database I/O`
	_, _ = db.Query("select 1") // want `\(\*database/sql.DB\).Query`
	_ = sql.Named("a", 1)
	return resp.StatusCode + len(http.StatusText(200)), nil
})

var Output = durable.NewOrchestrator("Output", func(ctx *durable.Context, _ any) (string, error) {
	fmt.Println("hi")                   // want `^fmt.Println in orchestrator "Output": it writes again on every replay; log with ctx.Logger\(\), which stays silent during replay`
	fmt.Printf("%d\n", 1)               // want `fmt.Printf`
	fmt.Fprintln(os.Stdout, "x")        // want `^os.Stdout in orchestrator "Output": it writes again`
	fmt.Fprintln(os.Stderr, "x")        // want `os.Stderr`
	log.Printf("x")                     // want `^log.Printf in orchestrator "Output": it writes again`
	logger := log.New(os.Stderr, "", 0) // want `os.Stderr`
	logger.SetPrefix("p")
	logger.Println("x")      // want `\(\*log.Logger\).Println`
	slog.Info("x")           // want `^log/slog.Info in orchestrator "Output"`
	slog.Default().Info("x") // want `log/slog.Default`
	println("x")             // want `^builtin println in orchestrator "Output"`

	// The replay-safe logger and formatting are fine.
	ctx.Logger().Info("step", "n", 1)
	var b strings.Builder
	fmt.Fprintf(&b, "%d", 1)
	return fmt.Sprintf("%s!", b.String()), fmt.Errorf("wrapped: %w", errors.New("x"))
})
