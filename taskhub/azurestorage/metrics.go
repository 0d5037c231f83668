package azurestorage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Storage metrics (see the README's "Metrics"): every HTTP request the
// Store sends, each retry included, counted and timed by service, kind of
// operation and outcome.
const (
	// MetricStorageRequests counts storage HTTP requests ({request}).
	MetricStorageRequests = "durabletask.storage.requests"
	// MetricStorageRequestDuration is the duration of one storage HTTP
	// request, from sending it to its response headers (s).
	MetricStorageRequestDuration = "durabletask.storage.request.duration"

	// AttrStorageService is the storage service: table, queue or blob.
	AttrStorageService = "durabletask.storage.service"
	// AttrStorageOperation is the kind of operation, e.g. queue.send (see
	// StorageOperation).
	AttrStorageOperation = "durabletask.storage.operation"
	// AttrStorageOutcome is ok (a status below 400), 4xx or 5xx (the status
	// class of a refusal), canceled (the caller's context ended) or
	// transport_error (no response).
	AttrStorageOutcome = "durabletask.storage.outcome"
)

// meterScope is the instrumentation scope of the storage metrics.
const meterScope = "github.com/go-durable/durablefunctions/taskhub/azurestorage"

// durationBuckets are the histogram bounds of storage request durations,
// in seconds: a millisecond (Azurite on loopback) to a minute (a retried
// request against a throttled account).
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// storageMetrics are the instruments of the storage request policy.
type storageMetrics struct {
	requests metric.Int64Counter
	duration metric.Float64Histogram
}

func newStorageMetrics(mp metric.MeterProvider) (*storageMetrics, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(meterScope)
	requests, err1 := m.Int64Counter(MetricStorageRequests, metric.WithUnit("{request}"),
		metric.WithDescription("Storage HTTP requests (each retry counts), by service, operation and outcome."))
	duration, err2 := m.Float64Histogram(MetricStorageRequestDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of one storage HTTP request, until its response headers."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("azurestorage: metrics: %w", err)
	}
	return &storageMetrics{requests: requests, duration: duration}, nil
}

// policy returns the per-retry pipeline policy that records the requests
// of service; nil when m is nil.
func (m *storageMetrics) policy(service string) []policy.Policy {
	if m == nil {
		return nil
	}
	return []policy.Policy{&metricsPolicy{m: m, service: service}}
}

// metricsPolicy counts and times each HTTP request. While no SDK meter
// provider is installed (the instruments are disabled) it only passes the
// request on.
type metricsPolicy struct {
	m       *storageMetrics
	service string
}

func (p *metricsPolicy) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	ctx := raw.Context()
	if !p.m.requests.Enabled(ctx) && !p.m.duration.Enabled(ctx) {
		return req.Next()
	}
	began := time.Now()
	resp, err := req.Next()
	elapsed := time.Since(began).Seconds()
	attrs := metric.WithAttributes(
		attribute.String(AttrStorageService, p.service),
		attribute.String(AttrStorageOperation, StorageOperation(p.service, raw)),
		attribute.String(AttrStorageOutcome, storageOutcome(resp, err)),
	)
	p.m.requests.Add(ctx, 1, attrs)
	p.m.duration.Record(ctx, elapsed, attrs)
	return resp, err
}

// storageOutcome classifies a request's result.
func storageOutcome(resp *http.Response, err error) string {
	switch {
	case resp != nil && resp.StatusCode < 400:
		return "ok"
	case resp != nil && resp.StatusCode < 500:
		return "4xx"
	case resp != nil:
		return "5xx"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "transport_error"
	}
}

// StorageOperation names the kind of a storage request, from its method,
// path and query, in a small fixed set:
//
//   - queue: queue.send, queue.receive, queue.peek, queue.delete (a
//     message), queue.update (a message's visibility or text), queue.clear,
//     queue.metadata (properties, e.g. the message count), queue.manage
//     (create, delete or list queues);
//   - table: table.query, table.get (one entity), table.insert,
//     table.update (replace or upsert), table.merge, table.delete,
//     table.batch (an entity-group transaction), table.manage (create,
//     delete or list tables);
//   - blob: blob.get, blob.put, blob.delete, blob.properties, blob.lease
//     (blob or container leases), blob.list, blob.manage (containers and
//     other service calls).
//
// Anything else of a service is "{service}.other".
func StorageOperation(service string, r *http.Request) string {
	path := strings.TrimSuffix(r.URL.Path, "/")
	q := r.URL.Query()
	comp := q.Get("comp")
	method := r.Method
	if m := r.Header.Get("X-HTTP-Method"); m != "" {
		method = m
	}
	switch service {
	case "queue":
		last := path[strings.LastIndexByte(path, '/')+1:]
		switch {
		case last == "messages":
			switch method {
			case http.MethodPost:
				return "queue.send"
			case http.MethodGet:
				if strings.EqualFold(q.Get("peekonly"), "true") {
					return "queue.peek"
				}
				return "queue.receive"
			case http.MethodDelete:
				return "queue.clear"
			}
		case strings.HasSuffix(strings.TrimSuffix(path, "/"+last), "/messages"):
			switch method {
			case http.MethodDelete:
				return "queue.delete"
			case http.MethodPut:
				return "queue.update"
			}
		case comp == "metadata":
			return "queue.metadata"
		default:
			return "queue.manage"
		}
	case "table":
		last := path[strings.LastIndexByte(path, '/')+1:]
		switch {
		case last == "$batch":
			return "table.batch"
		case strings.HasPrefix(last, "Tables"):
			return "table.manage"
		case strings.Contains(last, "(PartitionKey="):
			switch method {
			case http.MethodGet:
				return "table.get"
			case http.MethodPut:
				return "table.update"
			case http.MethodPatch, "MERGE":
				return "table.merge"
			case http.MethodDelete:
				return "table.delete"
			}
		case method == http.MethodGet:
			return "table.query"
		case method == http.MethodPost:
			return "table.insert"
		}
	case "blob":
		switch {
		case comp == "lease":
			return "blob.lease"
		case comp == "list":
			return "blob.list"
		case comp == "block" || comp == "blocklist":
			return "blob.put"
		case q.Get("restype") != "" || comp != "":
			return "blob.manage"
		}
		switch method {
		case http.MethodGet:
			return "blob.get"
		case http.MethodPut:
			return "blob.put"
		case http.MethodDelete:
			return "blob.delete"
		case http.MethodHead:
			return "blob.properties"
		}
	}
	return service + ".other"
}
