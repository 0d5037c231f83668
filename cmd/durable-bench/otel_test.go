package main

import (
	"context"
	"io"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
	"github.com/go-durable/durablefunctions/internal/otlptest"
)

// TestOtelOnExports assembles the app with the SDK's providers, as -otel on
// does, runs the sample in process and over HTTP and a short sequence, and
// checks what the in-process receiver got: every span of every instance,
// and the counters agreeing with the spans; the global providers are left
// alone (the providers go through the options).
func TestOtelOnExports(t *testing.T) {
	conn := azuritetest.ConnectionString(t)
	root, err := azuritetest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags([]string{"-storage", conn, "-otel", "on"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	recv, tel, err := startTelemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	b, closeApp, err := assemble(ctx, cfg, conn, root, tel)
	if err != nil {
		t.Fatal(err)
	}
	defer closeApp()
	b.progress, b.out = io.Discard, io.Discard
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		t.Error("the global tracer provider is the SDK's: assemble installed it")
	}

	const inProcess, viaHTTP, chain = 3, 2, 5
	for range inProcess {
		if _, err := b.sampleInProcess(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for range viaHTTP {
		if _, _, err := b.sampleViaHTTP(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.runShape(ctx, sequenceOrchestrator.Name(), chain, chain, time.Minute); err != nil {
		t.Fatal(err)
	}
	closeApp()
	if err := b.checkTelemetry(tel, recv, 0, 0); err != nil {
		t.Fatal(err)
	}
	p := readPipeline(recv.Spans(), recv.Points())
	// The sample: create_orchestration, orchestration, and a client and a
	// server span per Hello; the sequence likewise with 5 Inc.
	for name, want := range map[string]struct{ instances, spans int }{
		sampleOrchestrator.Name():   {inProcess + viaHTTP, 8},
		sequenceOrchestrator.Name(): {1, 2 + 2*chain},
	} {
		got := p.byOrch[name]
		if len(got) != want.instances {
			t.Errorf("%s: %d instances traced, want %d (%v)", name, len(got), want.instances, p.byOrch)
		}
		for _, n := range got {
			if n != want.spans {
				t.Errorf("%s: an instance has %d spans, want %d", name, n, want.spans)
			}
		}
	}
	if len(p.byOrch) != 2 {
		t.Errorf("spans grouped as %v, want the two orchestrations only", p.byOrch)
	}
	acts := 3*(inProcess+viaHTTP) + chain
	if p.activitySpans != acts || p.activities != float64(acts) {
		t.Errorf("activities: %d server spans, counter %v; want %d each", p.activitySpans, p.activities, acts)
	}
	if p.episodes < float64(inProcess+viaHTTP+1) || p.storageOps <= 0 {
		t.Errorf("episodes %v, storage requests %v: want at least one episode per instance and some requests", p.episodes, p.storageOps)
	}
}

func TestPipelineCheck(t *testing.T) {
	for _, tt := range []struct {
		p    pipeline
		fail bool
	}{
		{pipeline{spans: 8, points: 3}, false},
		{pipeline{spans: 0, points: 3}, true},
		{pipeline{spans: 8, points: 0}, true},
	} {
		if err := tt.p.check(); (err != nil) != tt.fail {
			t.Errorf("check(%d spans, %d points) = %v, want failure %v", tt.p.spans, tt.p.points, err, tt.fail)
		}
	}
	if got := readPipeline([]otlptest.Span{{Name: "orphan", Attrs: map[string]string{}}}, nil); got.byOrch["(no orchestration span)"][0] != 1 {
		t.Errorf("a span without an orchestration: %v", got.byOrch)
	}
}

func TestMedianF(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := medianF(tt.in); got != tt.want {
			t.Errorf("medianF(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
