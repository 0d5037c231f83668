package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	c := newClassifier("benchHub")
	const acct = "http://127.0.0.1:10001/devstoreaccount1/"
	tests := []struct {
		method, url, want string
		background        bool
	}{
		{http.MethodPost, acct + "benchhub-control-02/messages?visibilitytimeout=60", "queue send control", false},
		{http.MethodGet, acct + "benchhub-control-00/messages?numofmessages=32", "queue receive control", true},
		{http.MethodGet, acct + "benchhub-workitems/messages?numofmessages=32", "queue receive workitems", true},
		{http.MethodGet, acct + "benchhub-workitems/messages?peekonly=true", "queue peek workitems", false},
		{http.MethodDelete, acct + "benchhub-workitems/messages/abc?popreceipt=x", "queue delete workitems", false},
		{http.MethodPut, acct + "benchhub-control-01/messages/abc?popreceipt=x", "queue update control", false},
		{http.MethodPost, acct + "benchHubInstances", "table instances insert", false},
		{http.MethodGet, acct + "benchHubInstances(PartitionKey='id',RowKey='')", "table instances read", false},
		{http.MethodGet, acct + "benchHubInstances()?$filter=x", "table instances query", false},
		{"MERGE", acct + "benchHubInstances(PartitionKey='id',RowKey='')", "table instances merge", false},
		{http.MethodPut, acct + "benchHubInstances(PartitionKey='id',RowKey='')", "table instances replace", false},
		{http.MethodGet, acct + "benchHubHistory()?$filter=x", "table history query", false},
		{http.MethodPost, acct + "$batch", "table batch", false},
		{http.MethodPut, acct + "benchHubPartitions(PartitionKey='',RowKey='x')", "table partitions replace", true},
		{http.MethodPut, acct + "benchhub-applease?restype=container&comp=lease", "blob app lease put", true},
		{http.MethodPut, acct + "benchhub-largemessages/blob1", "blob large message put", false},
		{http.MethodGet, acct + "otherqueue/messages", "other GET /devstoreaccount1/otherqueue/messages", false},
	}
	for _, tt := range tests {
		r, err := http.NewRequest(tt.method, tt.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := c.classify(r)
		if got != tt.want {
			t.Errorf("%s %s: classify = %q, want %q", tt.method, tt.url, got, tt.want)
		}
		if bg := background(got); bg != tt.background {
			t.Errorf("%s: background = %v, want %v", got, bg, tt.background)
		}
	}
}

func TestBreakdown(t *testing.T) {
	batch := map[string]int64{"queue send control": 20, "table batch": 40, "queue receive control": 7, "table partitions query": 2, "table instances read": 3}
	idle := map[string]int64{"queue receive control": 6, "table instances read": 1, "table partitions query": 1}
	b := breakdown(batch, idle, 10)
	want := map[string]float64{"queue send control": 2, "table batch": 4, "table instances read": 0.2}
	if len(b.work) != len(want) {
		t.Fatalf("work = %v, want %v", b.work, want)
	}
	for k, v := range want {
		if b.work[k] != v {
			t.Errorf("work[%q] = %v, want %v", k, b.work[k], v)
		}
	}
	if got := round2(b.perRun()); got != 6.2 {
		t.Errorf("perRun = %v, want 6.2", got)
	}
	if b.batchBG["queue receive control"] != 7 || b.idleBG["queue receive control"] != 6 || b.idleBG["table partitions query"] != 1 {
		t.Errorf("background = %v / %v", b.batchBG, b.idleBG)
	}
}

func TestPct(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 30; i++ {
		d = append(d, time.Duration(31-i)*time.Millisecond)
	}
	for _, tt := range []struct {
		p    int
		want time.Duration
	}{{0, 1 * time.Millisecond}, {50, 15 * time.Millisecond}, {95, 29 * time.Millisecond}, {100, 30 * time.Millisecond}} {
		if got := pct(d, tt.p); got != tt.want {
			t.Errorf("pct(1..30 ms, %d) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := pct(nil, 50); got != 0 {
		t.Errorf("pct(nil) = %v, want 0", got)
	}
}

func TestStepRecorderWindows(t *testing.T) {
	r := newStepRecorder(10)
	base := time.Now().UnixNano()
	// Activities 0..4 one ms apart, 5..9 three ms apart.
	at := []int64{0, 1, 2, 3, 4, 7, 10, 13, 16, 19}
	for i, ms := range at {
		r.first[i].Store(base + ms*int64(time.Millisecond))
	}
	r.mark(3)
	r.mark(12)
	if r.repeats.Load() != 1 || r.outside.Load() != 1 {
		t.Errorf("repeats %d, outside %d; want 1, 1", r.repeats.Load(), r.outside.Load())
	}
	first, last, err := r.windows(4)
	if err != nil {
		t.Fatal(err)
	}
	if first != time.Millisecond || last != 3*time.Millisecond {
		t.Errorf("windows(4) = %v, %v; want 1ms, 3ms", first, last)
	}
	if _, _, err := r.windows(6); err == nil || !strings.Contains(err.Error(), "at least 12") {
		t.Errorf("windows(6) error = %v, want one naming the 12 activities needed", err)
	}
	gap := newStepRecorder(4)
	gap.mark(0)
	gap.mark(1)
	gap.mark(3)
	if _, _, err := gap.windows(2); err == nil || !strings.Contains(err.Error(), "input 2 never ran") {
		t.Errorf("windows with a gap: error = %v, want one naming input 2", err)
	}
}

func TestSummaryJSON(t *testing.T) {
	var s summary
	s.add("w1_p50_ms_inproc", 8.25)
	s.add("calls_per_sample_by_kind", map[string]float64{"table batch": 4, "queue send control": 1})
	s.add("w2_n", 500)
	want := `{"w1_p50_ms_inproc":8.25,"calls_per_sample_by_kind":{"queue send control":1,"table batch":4},"w2_n":500}`
	if got := s.json(); got != want {
		t.Errorf("json = %s\nwant   %s", got, want)
	}
}

func TestCheckOutputs(t *testing.T) {
	if err := checkSample(`["Hello Tokyo!","Hello Seattle!","Hello London!"]`); err != nil {
		t.Errorf("the right sample output: %v", err)
	}
	for _, bad := range []string{`["Hello Tokyo!","Hello London!","Hello Seattle!"]`, `null`, `"x"`} {
		if err := checkSample(bad); err == nil {
			t.Errorf("checkSample(%s) accepted a wrong output", bad)
		}
	}
	if err := checkInt("50", 50); err != nil {
		t.Errorf("checkInt(50, 50): %v", err)
	}
	if err := checkInt("49", 50); err == nil || !strings.Contains(err.Error(), "want 50") {
		t.Errorf("checkInt(49, 50) error = %v", err)
	}
}

func TestParseFlags(t *testing.T) {
	var sink strings.Builder
	c, err := parseFlags(nil, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if c.sequential != 30 || c.burst != 500 || c.starters != 32 || c.fan != 200 || c.chain != 50 || c.long != 5000 || c.longWindow != 500 || c.list != 0 ||
		c.entitySignals != 1000 || c.entityClients != 32 || c.entityKeys != 100 || c.entityOrchs != 25 || c.entityOrchSignals != 40 || c.entityCalls != 200 || c.entityRepeat != 3 ||
		c.otel != otelOff || c.otelRounds != 5 {
		t.Errorf("defaults = %+v", c)
	}
	// -otel both leaves the long sequence out unless it was asked for.
	if c, err := parseFlags([]string{"-otel", "both"}, &sink); err != nil || c.long != 0 || c.otel != otelBoth {
		t.Errorf("-otel both: long %d, otel %q, err %v; want long 0", c.long, c.otel, err)
	}
	if c, err := parseFlags([]string{"-otel", "both", "-long", "0", "-otel-rounds", "2"}, &sink); err != nil || c.otelRounds != 2 {
		t.Errorf("-otel both -long 0 -otel-rounds 2: rounds %d, err %v", c.otelRounds, err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-long", "800"}, "-long-window=500 with -long=800"},
		{[]string{"-sequential", "0"}, "-sequential=0"},
		{[]string{"-burst-timeout", "0s"}, "-burst-timeout=0s"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-entity-signals", "-1"}, "-entity-signals=-1: want 0 or more"},
		{[]string{"-entity-orchs", "-2"}, "-entity-orchs=-2: want 0 or more"},
		{[]string{"-entity-calls", "-3"}, "-entity-calls=-3: want 0 or more"},
		{[]string{"-entity-repeat", "-1"}, "-entity-repeat=-1: want 0 or more"},
		{[]string{"-entity-clients", "0"}, "-entity-clients=0: want a positive number"},
		{[]string{"-entity-keys", "0"}, "-entity-keys=0: want a positive number"},
		{[]string{"-entity-orch-signals", "0"}, "-entity-orch-signals=0: want a positive number"},
		{[]string{"-entity-timeout", "0s"}, "-entity-timeout=0s: want a positive duration"},
		{[]string{"-entity-signals", "50"}, "-entity-signals=50 with -entity-keys=100: want at least one signal per entity"},
		{[]string{"-entity-orchs", "2", "-entity-orch-signals", "10"}, "-entity-orchs=2 x -entity-orch-signals=10 = 20 signals with -entity-keys=100"},
		{[]string{"-otel", "yes"}, `-otel="yes": want off, on or both`},
		{[]string{"-otel-rounds", "0"}, "-otel-rounds=0: want a positive number"},
		{[]string{"-otel", "both", "-long", "1000"}, "-long with -otel both"},
		{[]string{"-otel", "both", "-idle", "5s"}, "-idle with -otel both"},
		{[]string{"-otel", "both", "-trace"}, "-trace with -otel both"},
		{[]string{"-otel", "both", "-list", "10"}, "-list with -otel both"},
	} {
		if _, err := parseFlags(tt.args, &sink); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseFlags(%q) error = %v, want one containing %q", tt.args, err, tt.want)
		}
	}
}
