// Command testhandler is the custom handler the hostemulator tests start. It
// is built on package handler and binds whichever of its functions the test's
// app root declares. With -raw it also answers some function names with
// deliberately broken or introspective replies, to exercise the emulator's
// strict checks.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-durable/durablefunctions/handler"
)

func main() {
	addr := flag.String("addr", handler.DefaultAddr, "listen address in standalone mode")
	raw := flag.Bool("raw", false, "also serve the raw protocol test functions")
	greeting := flag.String("greeting", "", "a value reported by the Env function")
	noListen := flag.Bool("no-listen", false, "never listen (readiness timeout test)")
	flag.Parse()

	fmt.Println("testhandler: starting")
	fmt.Fprintln(os.Stderr, "testhandler: warning sample")
	fmt.Fprintln(os.Stderr, "testhandler: error sample")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *noListen {
		<-ctx.Done()
		return
	}
	if err := run(ctx, *addr, *raw, *greeting); err != nil {
		fmt.Fprintln(os.Stderr, "testhandler: error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr string, raw bool, greeting string) error {
	app, err := handler.New(handler.Options{})
	if err != nil {
		return err
	}
	httpFuncs := map[string]handler.HTTPFunc{
		"Echo":  echo,
		"Env":   envFunc(greeting),
		"Crash": crash,
		"Slow":  slow,
	}
	invocationFuncs := map[string]handler.InvocationFunc{
		"Work":   work,
		"Tick":   tick,
		"Refuse": refuse,
	}
	for _, f := range app.Functions() {
		if fn, ok := httpFuncs[f.Name]; ok {
			if err := app.HandleHTTP(f.Name, fn); err != nil {
				return err
			}
		}
		if fn, ok := invocationFuncs[f.Name]; ok {
			if err := app.HandleInvocation(f.Name, fn); err != nil {
				return err
			}
		}
	}
	if !raw {
		return app.Run(ctx, addr)
	}
	mode, listenAddr, err := handler.ListenAddress(addr)
	if err != nil {
		return err
	}
	if mode != handler.ModeHost {
		return fmt.Errorf("-raw needs host mode")
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return err
	}
	return app.Serve(ctx, ln, rawFunctions(app.HostHandler()))
}

func echo(ctx context.Context, req *handler.Request) *handler.Response {
	return handler.JSON(http.StatusOK, map[string]any{
		"method":       req.Method,
		"url":          req.URL.String(),
		"escapedPath":  req.EscapedPath,
		"host":         req.Header.Get("Host"),
		"query":        req.Query,
		"params":       req.Params,
		"contentType":  req.Header.Get("Content-Type"),
		"body":         string(req.Body),
		"invocationId": handler.InvocationID(ctx),
	})
}

func envFunc(greeting string) handler.HTTPFunc {
	return func(context.Context, *handler.Request) *handler.Response {
		env := map[string]string{}
		for _, k := range []string{"FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT", "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
			"FUNCTIONS_HTTPWORKER_ID", "FUNCTIONS_APP_ROOT_PATH", "AzureWebJobsScriptRoot", "AZURE_FUNCTIONS_ENVIRONMENT",
			"FROM_SETTINGS", "OVERRIDDEN", "SHELL_WINS"} {
			env[k] = os.Getenv(k)
		}
		wd, _ := os.Getwd()
		return handler.JSON(http.StatusOK, map[string]any{"env": env, "greeting": greeting, "args": flag.Args(), "cwd": wd, "pid": os.Getpid()})
	}
}

func crash(_ context.Context, req *handler.Request) *handler.Response {
	code, _ := strconv.Atoi(req.Params["code"])
	os.Exit(code)
	return nil
}

func slow(ctx context.Context, _ *handler.Request) *handler.Response {
	<-ctx.Done()
	return handler.Error(http.StatusServiceUnavailable, "Cancelled", "cancelled")
}

func work(_ context.Context, inv *handler.Invocation) (*handler.InvocationResult, error) {
	text, _ := inv.DataString(inv.Function.TriggerName)
	dequeue, _ := inv.MetadataString("DequeueCount")
	id, _ := inv.MetadataString("Id")
	op, _ := inv.MetadataString("op")
	inserted, err := inv.MetadataTime("InsertionTime")
	if err != nil {
		return nil, err
	}
	return &handler.InvocationResult{
		Outputs: map[string]any{"out": map[string]any{
			"text": text, "dequeueCount": dequeue, "id": id, "op": op, "inserted": inserted,
		}},
		Logs: []string{"processed " + text},
	}, nil
}

// refuse fails every invocation, naming the message and its dequeue count.
func refuse(_ context.Context, inv *handler.Invocation) (*handler.InvocationResult, error) {
	text, _ := inv.DataString(inv.Function.TriggerName)
	dequeue, _ := inv.MetadataString("DequeueCount")
	return nil, fmt.Errorf("refused %q at dequeue %s", text, dequeue)
}

func tick(_ context.Context, inv *handler.Invocation) (*handler.InvocationResult, error) {
	raw, _ := inv.TriggerValue()
	var timer struct {
		Schedule       struct{ AdjustForDST bool }
		ScheduleStatus *struct{ Last, Next string }
		IsPastDue      bool
	}
	if err := json.Unmarshal(raw, &timer); err != nil {
		return nil, err
	}
	next := ""
	if timer.ScheduleStatus != nil {
		t, err := handler.ParseTime(timer.ScheduleStatus.Next)
		if err != nil {
			return nil, err
		}
		next = t.Format("2006-01-02T15:04:05Z07:00")
	}
	return &handler.InvocationResult{Logs: []string{fmt.Sprintf("tick pastDue=%v dst=%v next=%s", timer.IsPastDue, timer.Schedule.AdjustForDST, next)}}, nil
}

// rawFunctions answers some function names with hand-made replies.
func rawFunctions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		reply := func(status int, contentType, body string) {
			if contentType != "" {
				w.Header().Set("Content-Type", contentType)
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
		switch name {
		case "TextPlain":
			reply(200, "text/plain; charset=utf-8", `{"Outputs":{},"Logs":[],"ReturnValue":null}`)
		case "EmptyBody":
			reply(200, "application/json", "")
		case "NullBody":
			reply(200, "application/json", "null")
		case "Status500":
			reply(500, "application/json", `{"error":"broken"}`)
		case "NotJSON":
			reply(200, "application/json", `{"Outputs":`)
		case "BadHTTPOutput":
			reply(200, "application/json", `{"Outputs":{"res":"SomeBlah"}}`)
		case "Base64Out":
			reply(200, "application/json", `{"Outputs":{"outQ":"test"},"Logs":[],"ReturnValue":null}`)
		case "Headers":
			payload, err := io.ReadAll(r.Body)
			if err != nil {
				reply(500, "text/plain", err.Error())
				return
			}
			report, _ := json.Marshal(map[string]any{
				"method":           r.Method,
				"path":             r.URL.Path,
				"headers":          r.Header,
				"contentLength":    r.ContentLength,
				"transferEncoding": r.TransferEncoding,
				"payload":          json.RawMessage(payload),
			})
			out, _ := json.Marshal(map[string]any{"Outputs": map[string]any{"res": map[string]any{
				"statusCode": "200", "body": string(report), "headers": map[string]string{"Content-Type": "application/json"},
			}}})
			reply(200, "application/json; charset=utf-8", string(out))
		default:
			next.ServeHTTP(w, r)
		}
	})
}
