// Package otlptest is an in-test OpenTelemetry collector: it receives OTLP
// traces and metrics over HTTP/protobuf (POST /v1/traces, /v1/metrics,
// gzip or not) and over gRPC, and keeps them flattened for assertions.
package otlptest

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"time"

	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is one received span. IDs are lowercase hex; ParentID is "" for a
// root span.
type Span struct {
	TraceID, ID, ParentID string
	Name                  string
	Kind                  tracepb.Span_SpanKind
	Start, End            time.Time
	Attrs                 map[string]string // values in their text form
	Resource              map[string]string
	Status                tracepb.Status_StatusCode
	StatusMessage         string
}

// Point is one received metric data point (sums and gauges: Value;
// histograms: Count and Sum).
type Point struct {
	Metric   string
	Attrs    map[string]string
	Resource map[string]string
	Value    float64
	Count    uint64
	Sum      float64
}

// Receiver collects what the exporters send. Its methods are safe for
// concurrent use.
type Receiver struct {
	mu     sync.Mutex
	spans  []Span
	points []Point
	http   *httptest.Server
	grpc   *grpc.Server
	lis    net.Listener
}

// Start starts both endpoints on loopback ports; Close stops them.
func Start() (*Receiver, error) {
	r := &Receiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		var m colltrace.ExportTraceServiceRequest
		if !r.decode(w, req, &m) {
			return
		}
		r.addTraces(&m)
		r.answer(w, &colltrace.ExportTraceServiceResponse{})
	})
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, req *http.Request) {
		var m collmetrics.ExportMetricsServiceRequest
		if !r.decode(w, req, &m) {
			return
		}
		r.addMetrics(&m)
		r.answer(w, &collmetrics.ExportMetricsServiceResponse{})
	})
	r.http = httptest.NewServer(mux)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.http.Close()
		return nil, fmt.Errorf("otlptest: listen for gRPC: %w", err)
	}
	r.lis = lis
	r.grpc = grpc.NewServer()
	colltrace.RegisterTraceServiceServer(r.grpc, traceService{r: r})
	collmetrics.RegisterMetricsServiceServer(r.grpc, metricsService{r: r})
	go r.grpc.Serve(lis)
	return r, nil
}

// HTTPEndpoint is the value for OTEL_EXPORTER_OTLP_ENDPOINT with the
// http/protobuf protocol.
func (r *Receiver) HTTPEndpoint() string { return r.http.URL }

// GRPCEndpoint is the value for OTEL_EXPORTER_OTLP_ENDPOINT with the grpc
// protocol (plain text).
func (r *Receiver) GRPCEndpoint() string { return "http://" + r.lis.Addr().String() }

// Close stops both endpoints.
func (r *Receiver) Close() {
	r.http.Close()
	r.grpc.Stop()
}

// Spans returns a copy of the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Points returns a copy of the metric points received so far, in arrival
// order (a cumulative metric's latest value is its last point).
func (r *Receiver) Points() []Point {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.points)
}

// WaitSpans polls until ok accepts the spans received so far or ctx ends,
// and returns the last spans seen with ctx's error in the latter case.
func (r *Receiver) WaitSpans(ctx context.Context, ok func([]Span) bool) ([]Span, error) {
	for {
		s := r.Spans()
		if ok(s) {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *Receiver) decode(w http.ResponseWriter, req *http.Request, m proto.Message) bool {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return false
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err == nil {
		err = proto.Unmarshal(b, m)
	}
	if err != nil {
		http.Error(w, "otlptest: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func (r *Receiver) answer(w http.ResponseWriter, m proto.Message) {
	b, _ := proto.Marshal(m)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(b)
}

func (r *Receiver) addTraces(m *colltrace.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range m.ResourceSpans {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.spans = append(r.spans, Span{
					TraceID: hex.EncodeToString(s.TraceId), ID: hex.EncodeToString(s.SpanId),
					ParentID: hex.EncodeToString(s.ParentSpanId), Name: s.Name, Kind: s.Kind,
					Start: time.Unix(0, int64(s.StartTimeUnixNano)), End: time.Unix(0, int64(s.EndTimeUnixNano)),
					Attrs: attrs(s.Attributes), Resource: res,
					Status: s.GetStatus().GetCode(), StatusMessage: s.GetStatus().GetMessage(),
				})
			}
		}
	}
}

func (r *Receiver) addMetrics(m *collmetrics.ExportMetricsServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rm := range m.ResourceMetrics {
		res := attrs(rm.GetResource().GetAttributes())
		for _, sm := range rm.ScopeMetrics {
			for _, met := range sm.Metrics {
				r.points = append(r.points, points(met, res)...)
			}
		}
	}
}

func points(m *metricspb.Metric, res map[string]string) []Point {
	var out []Point
	number := func(dps []*metricspb.NumberDataPoint) {
		for _, dp := range dps {
			v := dp.GetAsDouble()
			if _, ok := dp.Value.(*metricspb.NumberDataPoint_AsInt); ok {
				v = float64(dp.GetAsInt())
			}
			out = append(out, Point{Metric: m.Name, Attrs: attrs(dp.Attributes), Resource: res, Value: v})
		}
	}
	switch d := m.Data.(type) {
	case *metricspb.Metric_Sum:
		number(d.Sum.DataPoints)
	case *metricspb.Metric_Gauge:
		number(d.Gauge.DataPoints)
	case *metricspb.Metric_Histogram:
		for _, dp := range d.Histogram.DataPoints {
			out = append(out, Point{Metric: m.Name, Attrs: attrs(dp.Attributes), Resource: res, Count: dp.Count, Sum: dp.GetSum()})
		}
	}
	return out
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		out[kv.Key] = text(kv.Value)
	}
	return out
}

func text(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	default:
		return fmt.Sprint(v)
	}
}

type traceService struct {
	colltrace.UnimplementedTraceServiceServer
	r *Receiver
}

func (s traceService) Export(_ context.Context, m *colltrace.ExportTraceServiceRequest) (*colltrace.ExportTraceServiceResponse, error) {
	s.r.addTraces(m)
	return &colltrace.ExportTraceServiceResponse{}, nil
}

type metricsService struct {
	collmetrics.UnimplementedMetricsServiceServer
	r *Receiver
}

func (s metricsService) Export(_ context.Context, m *collmetrics.ExportMetricsServiceRequest) (*collmetrics.ExportMetricsServiceResponse, error) {
	s.r.addMetrics(m)
	return &collmetrics.ExportMetricsServiceResponse{}, nil
}
