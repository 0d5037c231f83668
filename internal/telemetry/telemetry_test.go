package telemetry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/go-durable/durablefunctions/internal/otlptest"
	"github.com/go-durable/durablefunctions/internal/spanid"
)

// setenv sets m and clears every other variable Setup reads.
func setenv(t *testing.T, m map[string]string) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, m[k])
	}
}

func TestSetupExportsOverBothProtocols(t *testing.T) {
	r, err := otlptest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct{ protocol, endpoint string }{
		{"http/protobuf", r.HTTPEndpoint()},
		{"grpc", r.GRPCEndpoint()},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			defer otel.SetTracerProvider(tracenoop.NewTracerProvider())
			defer otel.SetMeterProvider(noop.NewMeterProvider())
			ctx := context.Background()
			setenv(t, map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": tc.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": tc.protocol,
				"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
			})
			shutdown, on, err := Setup(ctx, Config{ServiceName: "app", InstanceID: "w1"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !on.Traces || !on.Metrics {
				t.Fatalf("signals %+v, want both", on)
			}
			name := "probe-" + tc.protocol
			_, span := otel.Tracer("test").Start(ctx, name)
			span.End()
			c, _ := otel.Meter("test").Int64Counter(name)
			c.Add(ctx, 3)
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := shutdown(sctx); err != nil {
				t.Fatal(err)
			}
			var got *otlptest.Span
			for _, s := range r.Spans() {
				if s.Name == name {
					got = &s
				}
			}
			if got == nil {
				t.Fatalf("span %q not received: %+v", name, r.Spans())
			}
			if got.Resource["service.name"] != "app" || got.Resource["service.instance.id"] != "w1" || got.Resource["deployment.environment"] != "test" {
				t.Errorf("resource %v", got.Resource)
			}
			var value float64
			for _, p := range r.Points() {
				if p.Metric == name {
					value = p.Value
				}
			}
			if value != 3 {
				t.Errorf("counter %q = %v, want 3 (points %+v)", name, value, r.Points())
			}
		})
	}
}

func TestSetupChoosesSignals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    Signals
		wantErr string
	}{
		{"nothing set", nil, Signals{}, ""},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, Signals{true, true}, ""},
		{"traces endpoint only", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"}, Signals{Traces: true}, ""},
		{"metrics off", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_METRICS_EXPORTER": "none"}, Signals{Traces: true}, ""},
		{"explicit otlp", map[string]string{"OTEL_METRICS_EXPORTER": "otlp"}, Signals{Metrics: true}, ""},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"}, Signals{}, ""},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, Signals{}, `OTEL_TRACES_EXPORTER="zipkin"`},
		{"json protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, Signals{}, `OTEL_EXPORTER_OTLP_PROTOCOL="http/json"`},
		{"signal protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "udp"}, Signals{}, `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="udp"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer otel.SetTracerProvider(tracenoop.NewTracerProvider())
			defer otel.SetMeterProvider(noop.NewMeterProvider())
			setenv(t, tc.env)
			shutdown, on, err := Setup(context.Background(), Config{}, nil)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrConfig naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if on != tc.want {
				t.Errorf("signals %+v, want %+v", on, tc.want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			shutdown(ctx) // the endpoint is unreachable; only the choice is tested
		})
	}
}

func TestNewProvidersInstallNothingAndExport(t *testing.T) {
	r, err := otlptest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	setenv(t, nil)
	ctx := context.Background()
	globalTP, globalMP := otel.GetTracerProvider(), otel.GetMeterProvider()
	traces, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(r.HTTPEndpoint()+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(r.HTTPEndpoint()+"/v1/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProviders(ctx, Config{ServiceName: "bench"}, traces, metrics)
	if err != nil {
		t.Fatal(err)
	}
	if p.Tracer == nil || p.Meter == nil {
		t.Fatalf("providers %+v, want both", p)
	}
	if otel.GetTracerProvider() != globalTP || otel.GetMeterProvider() != globalMP {
		t.Error("NewProviders changed the global providers")
	}
	// The span IDs of internal/spanid are honoured: the generator is installed.
	parentCtx, parent := p.Tracer.Tracer("test").Start(ctx, "parent")
	want := trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	_, child := p.Tracer.Tracer("test").Start(spanid.With(parentCtx, want), "child")
	child.End()
	parent.End()
	c, _ := p.Meter.Meter("test").Int64Counter("probe")
	c.Add(ctx, 5)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	var gotChild bool
	for _, s := range r.Spans() {
		if s.Name == "child" {
			gotChild = true
			if s.ID != want.String() {
				t.Errorf("child span ID %s, want %s", s.ID, want)
			}
			if s.Resource["service.name"] != "bench" {
				t.Errorf("resource %v", s.Resource)
			}
		}
	}
	if !gotChild {
		t.Errorf("child span not received: %+v", r.Spans())
	}
	var value float64
	for _, pt := range r.Points() {
		if pt.Metric == "probe" {
			value = pt.Value
		}
	}
	if value != 5 {
		t.Errorf("counter probe = %v, want 5 (points %+v)", value, r.Points())
	}

	// A nil exporter leaves its signal off.
	only, err := NewProviders(ctx, Config{}, nil, nil)
	if err != nil || only.Tracer != nil || only.Meter != nil {
		t.Fatalf("NewProviders(nil, nil) = %+v, %v; want no providers", only, err)
	}
	if err := only.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown of no providers: %v", err)
	}
}
