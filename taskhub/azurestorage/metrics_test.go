package azurestorage

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

func TestStorageOperation(t *testing.T) {
	const (
		q = "http://127.0.0.1:10001/devstoreaccount1"
		b = "https://acct.blob.core.windows.net"
		w = "https://acct.table.core.windows.net"
	)
	for _, tc := range []struct {
		service, method, url string
		header               string // X-HTTP-Method
		want                 string
	}{
		{"queue", "POST", q + "/hub-control-00/messages?messagettl=-1", "", "queue.send"},
		{"queue", "GET", q + "/hub-control-00/messages?numofmessages=32", "", "queue.receive"},
		{"queue", "GET", q + "/hub-control-00/messages?peekonly=true", "", "queue.peek"},
		{"queue", "DELETE", q + "/hub-control-00/messages", "", "queue.clear"},
		{"queue", "DELETE", q + "/hub-control-00/messages/abc-1?popreceipt=x", "", "queue.delete"},
		{"queue", "PUT", q + "/hub-control-00/messages/abc-1?popreceipt=x&visibilitytimeout=0", "", "queue.update"},
		{"queue", "GET", q + "/hub-workitems?comp=metadata", "", "queue.metadata"},
		{"queue", "PUT", q + "/hub-workitems", "", "queue.manage"},
		{"queue", "GET", q + "/?comp=list", "", "queue.manage"},
		{"table", "POST", w + "/$batch", "", "table.batch"},
		{"table", "POST", w + "/Tables", "", "table.manage"},
		{"table", "DELETE", w + "/Tables('hubHistory')", "", "table.manage"},
		{"table", "GET", w + "/hubInstances()?$filter=x", "", "table.query"},
		{"table", "GET", w + "/hubInstances(PartitionKey='a',RowKey='')", "", "table.get"},
		{"table", "POST", w + "/hubInstances", "", "table.insert"},
		{"table", "PUT", w + "/hubInstances(PartitionKey='a',RowKey='')", "", "table.update"},
		{"table", "PATCH", w + "/hubInstances(PartitionKey='a',RowKey='')", "", "table.merge"},
		{"table", "POST", w + "/hubInstances(PartitionKey='a',RowKey='')", "MERGE", "table.merge"},
		{"table", "DELETE", w + "/hubInstances(PartitionKey='a',RowKey='')", "", "table.delete"},
		{"blob", "GET", b + "/hub-largemessages/x/y.json.gz", "", "blob.get"},
		{"blob", "PUT", b + "/hub-largemessages/x/y.json.gz", "", "blob.put"},
		{"blob", "PUT", b + "/hub-largemessages/x?comp=block&blockid=AA", "", "blob.put"},
		{"blob", "DELETE", b + "/hub-largemessages/x", "", "blob.delete"},
		{"blob", "HEAD", b + "/hub-applease/hub-appleaseinfo", "", "blob.properties"},
		{"blob", "PUT", b + "/hub-applease?comp=lease&restype=container", "", "blob.lease"},
		{"blob", "PUT", b + "/hub-applease/x?comp=lease", "", "blob.lease"},
		{"blob", "GET", b + "/hub-largemessages?restype=container&comp=list", "", "blob.list"},
		{"blob", "PUT", b + "/hub-largemessages?restype=container", "", "blob.manage"},
		{"blob", "POST", b + "/hub-largemessages/x", "", "blob.other"},
	} {
		req, err := http.NewRequest(tc.method, tc.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.header != "" {
			req.Header.Set("X-HTTP-Method", tc.header)
		}
		if got := StorageOperation(tc.service, req); got != tc.want {
			t.Errorf("StorageOperation(%s, %s %s) = %q, want %q", tc.service, tc.method, tc.url, got, tc.want)
		}
	}
}

// storageCounts collects the storage request counter as
// "operation outcome" → count, checking that the service attribute
// matches the operation and that every request was timed too.
func storageCounts(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	timed := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != meterScope {
			t.Errorf("scope %q, want %q", sm.Scope.Name, meterScope)
		}
		for _, m := range sm.Metrics {
			key := func(set attribute.Set) string {
				svc, _ := set.Value(AttrStorageService)
				op, _ := set.Value(AttrStorageOperation)
				out, _ := set.Value(AttrStorageOutcome)
				if !strings.HasPrefix(op.AsString(), svc.AsString()+".") {
					t.Errorf("%s: operation %q of service %q", m.Name, op.AsString(), svc.AsString())
				}
				return op.AsString() + " " + out.AsString()
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if m.Name != MetricStorageRequests || m.Unit != "{request}" || !d.IsMonotonic {
					t.Errorf("unexpected sum %s (%s)", m.Name, m.Unit)
				}
				for _, p := range d.DataPoints {
					counts[key(p.Attributes)] += p.Value
				}
			case metricdata.Histogram[float64]:
				if m.Name != MetricStorageRequestDuration || m.Unit != "s" {
					t.Errorf("unexpected histogram %s (%s)", m.Name, m.Unit)
				}
				for _, p := range d.DataPoints {
					timed[key(p.Attributes)] += p.Count
					if p.Count > 0 && (p.Sum <= 0 || p.Sum > float64(p.Count)*30) {
						t.Errorf("%s %s: %d requests took %v s in all", m.Name, key(p.Attributes), p.Count, p.Sum)
					}
				}
			default:
				t.Errorf("unexpected metric %s of type %T", m.Name, m.Data)
			}
		}
	}
	for k, n := range counts {
		if timed[k] != uint64(n) {
			t.Errorf("%s: %d requests counted, %d timed", k, n, timed[k])
		}
	}
	return counts
}

// TestStorageMetricsPerOperation runs each kind of storage call against
// Azurite and checks that exactly its requests are counted, by kind and
// outcome, and that every request the store sends is counted once.
func TestStorageMetricsPerOperation(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	counter := &countingTransport{base: defaultHTTPClient().Transport}
	s, err := New(Options{
		ConnectionString: azuritetest.ConnectionString(t),
		HubName:          azuritetest.HubName(t),
		HTTPClient:       &http.Client{Transport: counter},
		MeterProvider:    mp,
		PartitionCount:   2,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.CreateTaskHub(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.DeleteTaskHub(context.Background()); err != nil {
			t.Errorf("DeleteTaskHub: %v", err)
		}
	}()
	created := storageCounts(t, reader)
	for _, op := range []string{"queue.manage ok", "table.manage ok", "table.insert ok"} {
		if created[op] == 0 {
			t.Errorf("CreateTaskHub: no %q request counted (%v)", op, created)
		}
	}

	id := "metrics-1"
	var sent, received backend.Receipt
	var etag string
	row := backend.InstanceState{InstanceID: id, Name: "Orch", ExecutionID: "e1", Status: history.StatusPending,
		CreatedTime: time.Now(), LastUpdatedTime: time.Now()}
	large := raiseEvent(id, "big", `"`+strings.Repeat("x", 70_000)+`"`)
	steps := []struct {
		name string
		do   func() error
		want map[string]int64
	}{
		{"SendControl", func() (err error) { sent, err = s.SendControl(ctx, raiseEvent(id, "e", `1`), 0); return },
			map[string]int64{"queue.send ok": 1}},
		{"ReceiveControl", func() error {
			rs, _, err := s.ReceiveControl(ctx, s.PartitionOf(id), 32, time.Minute)
			if err == nil && len(rs) != 1 {
				err = fmt.Errorf("received %d messages, want 1", len(rs))
			}
			if err == nil {
				received = rs[0].Receipt
			}
			return err
		}, map[string]int64{"queue.receive ok": 1}},
		{"SetVisibility", func() (err error) { received, err = s.SetVisibility(ctx, received, time.Minute); return },
			map[string]int64{"queue.update ok": 1}},
		{"DeleteMessage with the send's stale receipt", func() error {
			if err := s.DeleteMessage(ctx, sent); err == nil {
				return fmt.Errorf("deleted with a stale receipt")
			}
			return nil
		}, map[string]int64{"queue.delete 4xx": 1}},
		{"DeleteMessage", func() error { return s.DeleteMessage(ctx, received) },
			map[string]int64{"queue.delete ok": 1}},
		{"ControlQueueLength", func() error { _, err := s.ControlQueueLength(ctx, 0); return err },
			map[string]int64{"queue.metadata ok": 1}},
		{"WorkItemQueueLength", func() error { _, err := s.WorkItemQueueLength(ctx); return err },
			map[string]int64{"queue.metadata ok": 1}},
		{"CreateInstance", func() (err error) { etag, err = s.CreateInstance(ctx, row); return },
			map[string]int64{"table.insert ok": 1}},
		{"GetInstance", func() error { _, err := s.GetInstance(ctx, id, false); return err },
			map[string]int64{"table.get ok": 1}},
		{"GetInstance of a missing instance", func() error { _, err := s.GetInstance(ctx, "nobody", false); return ignore(err, backend.ErrNotFound) },
			map[string]int64{"table.get 4xx": 1}},
		{"MergeInstance", func() error {
			r := row
			r.ETag, r.Status = etag, history.StatusRunning
			var err error
			etag, err = s.MergeInstance(ctx, r)
			return err
		}, map[string]int64{"table.merge ok": 1}},
		{"UpdateInstance", func() error {
			r := row
			r.ETag = etag
			_, err := s.UpdateInstance(ctx, r)
			return err
		}, map[string]int64{"table.update ok": 1}},
		{"QueryInstances", func() error { _, _, err := s.QueryInstances(ctx, backend.InstanceQuery{}); return err },
			map[string]int64{"table.query ok": 1}},
		{"AppendHistory", func() error {
			_, err := s.AppendHistory(ctx, id, "e1", 0, sequentialEvents(3), "")
			return err
		}, map[string]int64{"table.batch ok": 1}},
		// The first large message creates the container: its upload is
		// refused (404), the container created, the upload repeated.
		{"SendControl of a first large message", func() (err error) { _, err = s.SendControl(ctx, large, 0); return },
			map[string]int64{"blob.put 4xx": 1, "blob.manage ok": 1, "blob.put ok": 1, "queue.send ok": 1}},
		{"SendControl of a large message", func() (err error) { _, err = s.SendControl(ctx, large, 0); return },
			map[string]int64{"blob.put ok": 1, "queue.send ok": 1}},
		{"ReceiveControl of the large messages", func() error {
			rs, _, err := s.ReceiveControl(ctx, s.PartitionOf(id), 32, time.Minute)
			if err == nil && len(rs) != 2 {
				err = fmt.Errorf("received %d messages, want 2", len(rs))
			}
			return err
		}, map[string]int64{"queue.receive ok": 1, "blob.get ok": 2}},
	}
	for _, st := range steps {
		before := storageCounts(t, reader)
		n := counter.calls(func() {
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		})
		after := storageCounts(t, reader)
		got := map[string]int64{}
		var total int64
		for k, v := range after {
			if d := v - before[k]; d != 0 {
				got[k] = d
				total += d
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Errorf("%s: counted %v, want %v", st.name, got, st.want)
		}
		if total != n {
			t.Errorf("%s: %d requests counted, %d sent", st.name, total, n)
		}
	}
	// Every request so far, the hub's creation included, was counted.
	var total int64
	all := storageCounts(t, reader)
	for _, v := range all {
		total += v
	}
	if total != counter.n.Load() {
		t.Errorf("%d requests counted in all, %d sent", total, counter.n.Load())
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("requests by kind: %v", keys)
}

func ignore(err, target error) error {
	if err != nil && strings.Contains(err.Error(), target.Error()) {
		return nil
	}
	return err
}

// TestStorageMetricsPolicyNoop checks that with a no-op meter provider
// the policy adds no allocation to a request beyond what any policy costs
// in an azcore pipeline (a copy of the request per step).
func TestStorageMetricsPolicyNoop(t *testing.T) {
	m, err := newStorageMetrics(noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	ok := transportFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}}, nil
	})
	allocs := func(perRetry []policy.Policy) float64 {
		pl := runtime.NewPipeline("test", "v0", runtime.PipelineOptions{},
			&policy.ClientOptions{Transport: ok, PerRetryPolicies: perRetry, Retry: policy.RetryOptions{MaxRetries: -1},
				Telemetry: policy.TelemetryOptions{Disabled: true}})
		return testing.AllocsPerRun(200, func() {
			req, err := runtime.NewRequest(context.Background(), http.MethodGet, "http://127.0.0.1:1/acct/q/messages")
			if err != nil {
				t.Fatal(err)
			}
			resp, err := pl.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("Do: %v", err)
			}
		})
	}
	base, with := allocs([]policy.Policy{passThrough{}}), allocs(m.policy("queue"))
	if with > base {
		t.Errorf("a request allocates %.1f times with the metrics policy on a no-op provider, %.1f with a pass-through policy", with, base)
	}
}

type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

type passThrough struct{}

func (passThrough) Do(req *policy.Request) (*http.Response, error) { return req.Next() }
