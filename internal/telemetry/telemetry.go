// Package telemetry installs the OpenTelemetry SDK for the app from the
// standard OTEL_* environment variables: OTLP traces and metrics over
// HTTP/protobuf or gRPC. With none of those variables set it installs
// nothing, so the engine's instrumentation (written against the OTel API
// alone) stays on the API's no-op providers and costs next to nothing.
//
// Only the choice of exporter is made here; the exporters themselves read
// the rest of the standard variables (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
// _COMPRESSION, _CERTIFICATE ...), the batch span processor reads
// OTEL_BSP_*, the periodic metric reader OTEL_METRIC_EXPORT_INTERVAL, and
// the resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/go-durable/durablefunctions/internal/spanid"
)

// ErrConfig marks a telemetry setting that cannot be used; the error names
// the variable and its value.
var ErrConfig = errors.New("telemetry configuration")

// Config says who is reporting. Both fields are defaults that
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override.
type Config struct {
	// ServiceName is service.name, e.g. the Function App's name.
	ServiceName string
	// InstanceID is service.instance.id, e.g. the engine's worker ID.
	InstanceID string
}

// Signals reports which signals Setup enabled.
type Signals struct {
	Traces, Metrics bool
}

// Setup installs the global tracer and meter providers the OTEL_* variables
// ask for, and always the W3C trace-context
// propagator. It returns a shutdown function that flushes and stops what it
// installed; call it once, after the work that reports has stopped.
//
// A signal is enabled when its exporter is asked for: OTEL_TRACES_EXPORTER
// (OTEL_METRICS_EXPORTER) is "otlp", or it is unset and an OTLP endpoint is
// set (OTEL_EXPORTER_OTLP_ENDPOINT or the signal's own _ENDPOINT). "none"
// and OTEL_SDK_DISABLED=true disable. Unlike the SDK's own default, nothing
// is exported to localhost when no endpoint was configured.
func Setup(ctx context.Context, cfg Config, log *slog.Logger) (shutdown func(context.Context) error, on Signals, err error) {
	getenv := os.Getenv // the exporters read the process environment too
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	nothing := func(context.Context) error { return nil }
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return nothing, on, nil
	}
	if on.Traces, err = enabled(getenv, "TRACES"); err != nil {
		return nil, Signals{}, err
	}
	if on.Metrics, err = enabled(getenv, "METRICS"); err != nil {
		return nil, Signals{}, err
	}
	if !on.Traces && !on.Metrics {
		return nothing, on, nil
	}
	if log != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn("telemetry export failed", "err", err)
		}))
	}

	var traces sdktrace.SpanExporter
	var metrics sdkmetric.Exporter
	if on.Traces {
		if traces, err = traceExporter(ctx, getenv); err != nil {
			return nil, Signals{}, err
		}
	}
	if on.Metrics {
		if metrics, err = metricExporter(ctx, getenv); err != nil {
			if traces != nil {
				_ = traces.Shutdown(ctx)
			}
			return nil, Signals{}, err
		}
	}
	p, err := NewProviders(ctx, cfg, traces, metrics)
	if err != nil {
		return nil, Signals{}, err
	}
	if p.Tracer != nil {
		otel.SetTracerProvider(p.Tracer)
	}
	if p.Meter != nil {
		otel.SetMeterProvider(p.Meter)
	}
	return p.Shutdown, on, nil
}

// Providers are the SDK providers the app reports through. A nil field is
// a signal that is off.
type Providers struct {
	Tracer *sdktrace.TracerProvider
	Meter  *sdkmetric.MeterProvider
}

// NewProviders builds the providers Setup installs, over the given
// exporters, without installing them: a tracer provider with the batch span
// processor (OTEL_BSP_* apply) and the span IDs of internal/spanid, and a
// meter provider with a periodic reader (OTEL_METRIC_EXPORT_INTERVAL
// applies), both describing cfg's resource. A nil exporter leaves its
// signal off. Callers that wire providers through options (a benchmark, a
// library user) use it; Setup uses it for the app. On error the exporters
// are shut down.
func NewProviders(ctx context.Context, cfg Config, traces sdktrace.SpanExporter, metrics sdkmetric.Exporter) (Providers, error) {
	res, err := newResource(ctx, cfg)
	if err != nil {
		var errs []error
		if traces != nil {
			errs = append(errs, traces.Shutdown(ctx))
		}
		if metrics != nil {
			errs = append(errs, metrics.Shutdown(ctx))
		}
		return Providers{}, errors.Join(append([]error{err}, errs...)...)
	}
	var p Providers
	if traces != nil {
		// The engine builds spans of recorded steps with the span IDs their
		// history implies (see internal/spanid).
		p.Tracer = sdktrace.NewTracerProvider(sdktrace.WithBatcher(traces), sdktrace.WithResource(res), sdktrace.WithIDGenerator(spanid.Generator{}))
	}
	if metrics != nil {
		p.Meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metrics)), sdkmetric.WithResource(res))
	}
	return p, nil
}

// Shutdown flushes and stops the providers; call it once, after the work
// that reports has stopped.
func (p Providers) Shutdown(ctx context.Context) error {
	var errs []error
	if p.Tracer != nil {
		errs = append(errs, p.Tracer.Shutdown(ctx))
	}
	if p.Meter != nil {
		errs = append(errs, p.Meter.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// enabled reads OTEL_{signal}_EXPORTER and the endpoints.
func enabled(getenv func(string) string, signal string) (bool, error) {
	name := "OTEL_" + signal + "_EXPORTER"
	switch v := strings.ToLower(strings.TrimSpace(getenv(name))); v {
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != "", nil
	case "otlp":
		return true, nil
	case "none":
		return false, nil
	default:
		return false, fmt.Errorf("%w: %s=%q: only otlp and none are supported", ErrConfig, name, v)
	}
}

// protocol reads the OTLP protocol of a signal: the signal's own variable,
// then the general one, then the OTel default, http/protobuf.
func protocol(getenv func(string) string, signal string) (grpc bool, err error) {
	name := "OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL"
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		name = "OTEL_EXPORTER_OTLP_PROTOCOL"
		v = strings.TrimSpace(getenv(name))
	}
	switch strings.ToLower(v) {
	case "", "http/protobuf":
		return false, nil
	case "grpc":
		return true, nil
	default:
		return false, fmt.Errorf("%w: %s=%q: use http/protobuf or grpc", ErrConfig, name, v)
	}
}

func traceExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	grpc, err := protocol(getenv, "TRACES")
	if err != nil {
		return nil, err
	}
	var exp sdktrace.SpanExporter
	if grpc {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: the OTLP trace exporter: %w", err)
	}
	return exp, nil
}

func metricExporter(ctx context.Context, getenv func(string) string) (sdkmetric.Exporter, error) {
	grpc, err := protocol(getenv, "METRICS")
	if err != nil {
		return nil, err
	}
	var exp sdkmetric.Exporter
	if grpc {
		exp, err = otlpmetricgrpc.New(ctx)
	} else {
		exp, err = otlpmetrichttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: the OTLP metric exporter: %w", err)
	}
	return exp, nil
}

// newResource describes the process: cfg's defaults, then what the
// environment says (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) over them.
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	var attrs []attribute.KeyValue
	if cfg.ServiceName != "" {
		attrs = append(attrs, attribute.String("service.name", cfg.ServiceName))
	}
	if cfg.InstanceID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.InstanceID))
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("%w: OTEL_RESOURCE_ATTRIBUTES: %w", ErrConfig, err)
	}
	return res, nil
}
