package main

// What OpenTelemetry costs when it is on (-otel). The app's providers are
// built as the app builds them (telemetry.NewProviders: the batch span
// processor, the span IDs of internal/spanid, a periodic metric reader) and
// export over OTLP/HTTP to an in-process receiver (internal/otlptest), so
// recording, batching, encoding and the export's HTTP requests are all
// paid in the measured process, as is the receiver's decoding, which a
// real collector would do elsewhere. The providers reach the app through
// the engine's, the store's and the client's options, not the globals.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/go-durable/durablefunctions/internal/otlptest"
	"github.com/go-durable/durablefunctions/internal/telemetry"
	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
	"github.com/go-durable/durablefunctions/taskhub/engine"
)

// The values of -otel.
const (
	otelOff  = "off"
	otelOn   = "on"
	otelBoth = "both"
)

// checkOtelFlags checks -otel and -otel-rounds; set holds the flags given.
// -otel both runs W1..W4 and E1..E4 only: the long sequence (on by
// default) is left out, and asking for it or for the other extras is an
// error rather than silently ignored.
func checkOtelFlags(c *config, set map[string]bool) []error {
	var errs []error
	switch c.otel {
	case otelOff, otelOn:
	case otelBoth:
		for _, name := range []string{"long", "idle", "list", "trace"} {
			if set[name] && (name != "long" || c.long > 0) {
				errs = append(errs, fmt.Errorf("-%s with -otel both: the alternating runs cover W1..W4 and E1..E4 only; use -otel on for it", name))
			}
		}
		c.long = 0
	default:
		errs = append(errs, fmt.Errorf("-otel=%q: want off, on or both", c.otel))
	}
	if c.otelRounds <= 0 {
		errs = append(errs, fmt.Errorf("-otel-rounds=%d: want a positive number", c.otelRounds))
	}
	return errs
}

// otelBanner is the header's note on OpenTelemetry.
func otelBanner(mode string) string {
	if mode == otelOn {
		return ",\nOpenTelemetry on: traces and metrics exported over OTLP/HTTP to an in-process receiver"
	}
	return ""
}

// startTelemetry starts the receiver and the providers exporting to it.
func startTelemetry(ctx context.Context) (*otlptest.Receiver, telemetry.Providers, error) {
	recv, err := otlptest.Start()
	if err != nil {
		return nil, telemetry.Providers{}, fmt.Errorf("start the OTLP receiver: %w", err)
	}
	tel, err := newProviders(ctx, recv)
	if err != nil {
		recv.Close()
		return nil, telemetry.Providers{}, err
	}
	return recv, tel, nil
}

// newProviders builds the app's providers over OTLP/HTTP exporters to
// recv. The exporters' other settings (headers, compression, timeouts) and
// the processors' (OTEL_BSP_*, OTEL_METRIC_EXPORT_INTERVAL) come from the
// environment as in the app.
func newProviders(ctx context.Context, recv *otlptest.Receiver) (telemetry.Providers, error) {
	traces, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(recv.HTTPEndpoint()+"/v1/traces"))
	if err != nil {
		return telemetry.Providers{}, fmt.Errorf("the OTLP trace exporter: %w", err)
	}
	metrics, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(recv.HTTPEndpoint()+"/v1/metrics"))
	if err != nil {
		_ = traces.Shutdown(ctx)
		return telemetry.Providers{}, fmt.Errorf("the OTLP metric exporter: %w", err)
	}
	return telemetry.NewProviders(ctx, telemetry.Config{ServiceName: "durable-bench"}, traces, metrics)
}

// shutdownTelemetry flushes and stops tel (nothing when it is off).
func shutdownTelemetry(tel telemetry.Providers) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		return fmt.Errorf("flush the OpenTelemetry providers: %w", err)
	}
	return nil
}

// pipeline is what the receiver got from one run.
type pipeline struct {
	spans, points int
	// byOrch counts spans per instance, by the instance's orchestration.
	byOrch map[string][]int
	// activitySpans counts activity executions (server spans); the
	// counters are the final values of the engine's and the store's.
	activitySpans                    int
	episodes, activities, storageOps float64
}

// readPipeline sums up spans and points, those of one run.
func readPipeline(spans []otlptest.Span, points []otlptest.Point) pipeline {
	p := pipeline{spans: len(spans), points: len(points), byOrch: map[string][]int{}}
	perInstance := map[string]int{}
	orchOf := map[string]string{}
	for _, s := range spans {
		id := s.Attrs["durabletask.task.instance_id"]
		perInstance[id]++
		create, isCreate := strings.CutPrefix(s.Name, "create_orchestration:")
		exec, isExec := strings.CutPrefix(s.Name, "orchestration:")
		switch {
		case isCreate:
			orchOf[id] = baseName(create)
		case isExec && s.Kind == otlpServer:
			orchOf[id] = baseName(exec)
		case strings.HasPrefix(s.Name, "activity:") && s.Kind == otlpServer:
			p.activitySpans++
		}
	}
	for id, n := range perInstance {
		name, ok := orchOf[id]
		if !ok {
			name = "(no orchestration span)"
		}
		p.byOrch[name] = append(p.byOrch[name], n)
	}
	// Counters are cumulative: the last point of each attribute set is its
	// final value.
	last := map[string]float64{}
	for _, pt := range points {
		v := pt.Value
		if pt.Metric == engine.MetricActivityDuration {
			v = float64(pt.Count)
		}
		last[pt.Metric+"\x00"+attrKey(pt.Attrs)] = v
	}
	for k, v := range last {
		switch metric, _, _ := strings.Cut(k, "\x00"); metric {
		case engine.MetricEpisodes:
			p.episodes += v
		case engine.MetricActivities:
			p.activities += v
		case azurestorage.MetricStorageRequests:
			p.storageOps += v
		}
	}
	return p
}

// otlpServer is the OTLP encoding of a server span's kind.
const otlpServer = tracepb.Span_SPAN_KIND_SERVER

// baseName drops a span name's "@(version)".
func baseName(name string) string {
	n, _, _ := strings.Cut(name, "@(")
	return n
}

func attrKey(attrs map[string]string) string {
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + attrs[k] + "\x01")
	}
	return b.String()
}

// errNoTelemetry says the pipeline delivered nothing: the "on" figures
// would then be those of a run that exported nothing.
var errNoTelemetry = errors.New("OpenTelemetry on, but the receiver got no spans or no metric points")

// check fails when a signal delivered nothing. Figures that are merely
// short (spans dropped by a full batch queue) are printed, not failed.
func (p pipeline) check() error {
	if p.spans == 0 || p.points == 0 {
		return fmt.Errorf("%w (%d spans, %d points)", errNoTelemetry, p.spans, p.points)
	}
	return nil
}

// describe prints the sanity figures.
func (p pipeline) describe(w io.Writer, indent string) {
	fmt.Fprintf(w, "%sreceived %d spans and %d metric points\n", indent, p.spans, p.points)
	names := make([]string, 0, len(p.byOrch))
	for n := range p.byOrch {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := p.byOrch[n]
		fmt.Fprintf(w, "%s  %-24s %5d instances, spans per instance: median %d (min %d, max %d)\n",
			indent, n, len(c), median(c), slices.Min(c), slices.Max(c))
	}
	fmt.Fprintf(w, "%s  activities: %d activity server spans, %s = %.0f; %s = %.0f; %s = %.0f\n", indent, p.activitySpans,
		engine.MetricActivities, p.activities, engine.MetricEpisodes, p.episodes, azurestorage.MetricStorageRequests, p.storageOps)
}

func median(v []int) int {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// checkTelemetry flushes tel after a run of -otel on, reads what recv
// got after the first spans and points, prints it and adds it to the
// summary.
func (b *bench) checkTelemetry(tel telemetry.Providers, recv *otlptest.Receiver, spansFrom, pointsFrom int) error {
	if err := shutdownTelemetry(tel); err != nil {
		return err
	}
	p := readPipeline(recv.Spans()[spansFrom:], recv.Points()[pointsFrom:])
	fmt.Fprintf(b.out, "\nOpenTelemetry pipeline (the sanity check of -otel on):\n")
	p.describe(b.out, "    ")
	b.sum.add("otel_spans", p.spans)
	b.sum.add("otel_points", p.points)
	if c := p.byOrch[sampleOrchestrator.Name()]; len(c) > 0 {
		b.sum.add("otel_spans_per_sample", median(c))
	}
	return p.check()
}

// measure is one figure compared off and on.
type measure struct {
	key, short, label string // short: the per-run lines' name
}

// measures are the figures of -otel both, in the summary's keys.
func measures(c config) []measure {
	ms := []measure{
		{"w1_p50_ms_inproc", "W1", "W1 sample p50, in process (ms)"},
		{"w1_p95_ms_inproc", "W1p95", "W1 sample p95, in process (ms)"},
		{"w1_p50_ms_user", "W1user", "W1 sample p50, as a user sees it (ms)"},
	}
	if c.burst > 0 {
		ms = append(ms, measure{"w2_orch_per_s", "W2/s", fmt.Sprintf("W2 %d at once, Instances table (orch/s)", c.burst)},
			measure{"w2_p50_ms", "W2p50", "W2 per instance p50 (ms)"})
	}
	if c.repeat > 0 {
		ms = append(ms, measure{fmt.Sprintf("w3_fan%d_ms", c.fan), "W3", fmt.Sprintf("W3 fan-out to %d (ms)", c.fan)},
			measure{fmt.Sprintf("w4_seq%d_ms", c.chain), "W4", fmt.Sprintf("W4 %d in sequence (ms)", c.chain)})
	}
	if c.entityRepeat > 0 && c.entitySignals > 0 {
		ms = append(ms, measure{"e1_http_one_signals_per_s", "E1/s", "E1 HTTP signals, one entity (/s)"},
			measure{"e2_http_many_signals_per_s", "E2/s", fmt.Sprintf("E2 HTTP signals, %d entities (/s)", c.entityKeys)})
	}
	if c.entityRepeat > 0 && c.entityOrchs > 0 {
		ms = append(ms, measure{"e3_orch_one_signals_per_s", "E3one/s", "E3 orchestration signals, one entity (/s)"},
			measure{"e3_orch_many_signals_per_s", "E3many/s", fmt.Sprintf("E3 orchestration signals, %d entities (/s)", c.entityKeys)})
	}
	if c.entityRepeat > 0 && c.entityCalls > 0 {
		ms = append(ms, measure{"e4_call_p50_ms", "E4", "E4 CallEntity p50, from history (ms)"})
	}
	if _, ok := processCPU(); ok {
		ms = append(ms, measure{cpuKey, "CPU", "CPU of the whole run: app, bench, receiver (s)"})
	}
	return ms
}

// runBoth runs the workloads with OpenTelemetry off and on alternately
// (ABAB), each run on an app and a task hub of its own, and prints the
// medians and on/off ratios.
func runBoth(ctx context.Context, cfg config, conn, where, root string) error {
	recv, err := otlptest.Start()
	if err != nil {
		return fmt.Errorf("start the OTLP receiver: %w", err)
	}
	defer recv.Close()
	ms := measures(cfg)
	fmt.Printf("durable-bench: OpenTelemetry off and on alternately, %d rounds, each run on a task hub of its own on %s\n", cfg.otelRounds, where)
	fmt.Printf("(on: traces and metrics exported over OTLP/HTTP to an in-process receiver)\n\n")
	vals := map[bool][]map[string]float64{}
	var samples []int // spans per sample instance, over all on runs
	for round := 1; round <= cfg.otelRounds; round++ {
		for _, on := range []bool{false, true} {
			began := time.Now()
			got, p, err := runSegment(ctx, cfg, conn, root, recv, on)
			mode := map[bool]string{false: "off", true: "on"}[on]
			if err != nil {
				return fmt.Errorf("round %d, OpenTelemetry %s: %w", round, mode, err)
			}
			vals[on] = append(vals[on], got)
			var line []string
			for _, m := range ms {
				v, ok := got[m.key]
				if !ok {
					return fmt.Errorf("round %d, OpenTelemetry %s: the run reported no %s (%s)", round, mode, m.label, m.key)
				}
				line = append(line, fmt.Sprintf("%s %.2f", m.short, v))
			}
			fmt.Printf("round %d %-3s  %s  (%s)\n", round, mode, strings.Join(line, ", "), time.Since(began).Round(time.Second))
			if on {
				p.describe(os.Stdout, "         ")
				samples = append(samples, p.byOrch[sampleOrchestrator.Name()]...)
			}
		}
	}

	var sum summary
	sum.add("otel_rounds", cfg.otelRounds)
	fmt.Printf("\nOpenTelemetry off vs on, %d rounds (ABAB), medians of the runs' figures; ratio = on / off of the medians,\n", cfg.otelRounds)
	fmt.Printf("paired = the median of each round's on / off (and its range). For ms lower is better, for /s higher.\n")
	fmt.Printf("  %-44s %10s %10s %7s %7s  %s\n", "measure", "off", "on", "ratio", "paired", "paired range")
	for _, m := range ms {
		var off, on, paired []float64
		for i := range vals[false] {
			a, b := vals[false][i][m.key], vals[true][i][m.key]
			off, on = append(off, a), append(on, b)
			if a > 0 {
				paired = append(paired, b/a)
			}
		}
		mo, mn := medianF(off), medianF(on)
		ratio := 0.0
		if mo > 0 {
			ratio = mn / mo
		}
		span := "-"
		if len(paired) > 0 {
			span = fmt.Sprintf("%.3f..%.3f", slices.Min(paired), slices.Max(paired))
		}
		fmt.Printf("  %-44s %10.2f %10.2f %7.3f %7.3f  %s\n", m.label, mo, mn, ratio, medianF(paired), span)
		sum.add("otel_off_"+m.key, round2(mo))
		sum.add("otel_on_"+m.key, round2(mn))
		sum.add("otel_ratio_"+m.key, round3(ratio))
		sum.add("otel_paired_ratio_"+m.key, round3(medianF(paired)))
	}
	if len(samples) > 0 {
		fmt.Printf("  spans per sample instance (on): median %d, min %d, max %d over %d instances\n",
			median(samples), slices.Min(samples), slices.Max(samples), len(samples))
		sum.add("otel_spans_per_sample", median(samples))
		sum.add("otel_spans_per_sample_min", slices.Min(samples))
	}
	fmt.Println()
	fmt.Println(sum.json())
	return nil
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runSegment assembles an app (with the SDK when on), runs W1..W4 and
// E1..E4 with their report discarded, takes the app down and returns the
// summary's figures and, when on, what the receiver got.
func runSegment(ctx context.Context, cfg config, conn, root string, recv *otlptest.Receiver, on bool) (map[string]float64, pipeline, error) {
	var tel telemetry.Providers
	if on {
		var err error
		if tel, err = newProviders(ctx, recv); err != nil {
			return nil, pipeline{}, err
		}
	}
	spansFrom, pointsFrom := len(recv.Spans()), len(recv.Points())
	b, closeApp, err := assemble(ctx, cfg, conn, root, tel)
	if err != nil {
		shutdownTelemetry(tel)
		return nil, pipeline{}, err
	}
	b.out = io.Discard
	// The CPU time covers the workloads, the app's stop and the last
	// export (spans still batched, the final metric collection).
	cpu0, cpuOK := processCPU()
	err = b.runAll(ctx)
	closeApp()
	if flushErr := shutdownTelemetry(tel); err == nil {
		err = flushErr
	}
	if err != nil {
		return nil, pipeline{}, err
	}
	got := map[string]float64{}
	for i, k := range b.sum.keys {
		if v, ok := b.sum.vals[i].(float64); ok {
			got[k] = v
		}
	}
	if cpu1, ok := processCPU(); cpuOK && ok {
		got[cpuKey] = round2((cpu1 - cpu0).Seconds())
	}
	if !on {
		return got, pipeline{}, nil
	}
	p := readPipeline(recv.Spans()[spansFrom:], recv.Points()[pointsFrom:])
	return got, p, p.check()
}

// cpuKey is the process's CPU seconds over one run of -otel both.
const cpuKey = "cpu_s"
