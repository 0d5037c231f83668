package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/handler/durableapi/apiclient"
	"github.com/go-durable/durablefunctions/internal/rawstorage"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/wake"
)

// apiBase is where the management API is served, under the app's URL.
const apiBase = "/api/durabletask"

// storageURL is the made-up base URL of the management API served in
// process in storage mode.
const storageURL = "http://storage.invalid" + apiBase

// conn is a connection to a task hub: the management API client, and in
// storage mode the task hub client under it.
type conn struct {
	api   *apiclient.Client
	store *client.Client // nil in API mode
}

// parseConnect parses a command's flags and between min and max arguments
// (see parse), then connects (see connect): the start of most commands.
func (e *env) parseConnect(ctx context.Context, fs *flag.FlagSet, c *command, args []string, min, max int) ([]string, *conn, error) {
	pos, err := e.parse(fs, c, args, min, max)
	if err != nil {
		return nil, nil, err
	}
	cn, err := e.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	return pos, cn, nil
}

// connect opens the task hub of the global flags. In API mode it talks to
// {url}/api/durabletask. In storage mode it serves the same management API
// in this process over a client of the task hub's storage, so that every
// command behaves alike in both modes (storage mode cannot run an
// orchestration, but it can start one, send it events and read it, as
// the app's own client does; an app serving the hub runs it).
func (e *env) connect(ctx context.Context) (*conn, error) {
	if e.g.storage == "" {
		base := strings.TrimRight(e.g.url, "/")
		if !strings.HasSuffix(base, apiBase) {
			base += apiBase
		}
		c, err := apiclient.New(base, apiclient.WithKey(e.g.key))
		if err != nil {
			return nil, &usageError{fmt.Sprintf("--url %q: want an absolute http or https URL such as http://127.0.0.1:7071", e.g.url)}
		}
		return &conn{api: c}, nil
	}
	partitions := e.g.partitions
	if partitions == 0 {
		if s := e.getenv("DURABLE_PARTITION_COUNT"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return nil, usagef("DURABLE_PARTITION_COUNT=%q is not a number", s)
			}
			partitions = n
		}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := azurestorage.New(azurestorage.Options{ConnectionString: e.g.storage, HubName: e.g.hub, PartitionCount: partitions, Logger: quiet})
	if err != nil {
		return nil, &usageError{fmt.Sprintf("storage mode: %v", err)}
	}
	// A mistyped --hub must not create an empty task hub.
	if err := hubExists(ctx, e.g.storage, store.InstancesTableName()); err != nil {
		return nil, fmt.Errorf("storage mode: task hub %q: %w", e.g.hub, err)
	}
	// Creating the task hub is idempotent; it checks that the partition
	// count agrees with the hub's, so that messages reach the right queue.
	if err := store.CreateTaskHub(ctx); err != nil {
		return nil, fmt.Errorf("storage mode: open task hub %q: %w", e.g.hub, err)
	}
	// This process owns no partition: with wakes on, everything it sends
	// is announced on the wake queue, for an app scaled to zero. A wake
	// that cannot be sent is a warning; the command still succeeds.
	var be backend.Backend = store
	if e.g.wake {
		be = wake.New(store, wake.Options{Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	}
	tc := client.New(be, nil, nil)
	api := durableapi.New(tc, durableapi.Options{BasePath: apiBase, HubName: e.g.hub, Logger: quiet})
	c, err := apiclient.New(storageURL, apiclient.WithHTTPClient(&http.Client{Transport: inProcess{api}}))
	if err != nil {
		return nil, err
	}
	return &conn{api: c, store: tc}, nil
}

// inProcess is an http.RoundTripper that answers requests with the
// management API's handler in this process.
type inProcess struct{ api *durableapi.API }

// RoundTrip serves req with the API.
func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(b) > 0 {
			body = b
		}
	}
	h := req.Header.Clone()
	h.Set("Host", req.URL.Host)
	resp := t.api.Handle(req.Context(), &handler.Request{Method: req.Method, URL: req.URL, EscapedPath: req.URL.EscapedPath(),
		Query: req.URL.Query(), Header: h, Params: map[string]string{}, Body: body})
	out := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	if resp != nil {
		if resp.StatusCode != 0 {
			out.StatusCode = resp.StatusCode
		}
		if resp.Header != nil {
			out.Header = resp.Header
		}
		body = resp.Body
	} else {
		body = nil
	}
	out.Status = strconv.Itoa(out.StatusCode) + " " + http.StatusText(out.StatusCode)
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	return out, nil
}

// errNoHub: the storage account has no task hub of the name.
var errNoHub = errors.New("no such task hub in this storage account")

// hubExists checks that the task hub's Instances table exists, and names
// the hub whose table differs only in case if there is one (the task hub
// layout uses the name as given).
func hubExists(ctx context.Context, conn, table string) error {
	svc, err := rawstorage.Tables(conn)
	if err != nil {
		return err
	}
	pager := svc.NewListTablesPager(&aztables.ListTablesOptions{Top: to.Ptr[int32](1000)})
	similar := ""
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, t := range page.Tables {
			switch {
			case t.Name == nil:
			case *t.Name == table:
				return nil
			case strings.EqualFold(*t.Name, table):
				similar = strings.TrimSuffix(*t.Name, (*t.Name)[len(*t.Name)-len("Instances"):])
			}
		}
	}
	if similar != "" {
		return fmt.Errorf("%w (no table %s; did you mean --hub %s?)", errNoHub, table, similar)
	}
	return fmt.Errorf("%w (no table %s; check --hub)", errNoHub, table)
}
