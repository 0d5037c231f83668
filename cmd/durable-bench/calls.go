package main

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// countingTransport counts storage requests by kind (see classifier) and
// can record a timeline of them.
type countingTransport struct {
	next     http.RoundTripper
	classify func(*http.Request) string

	mu      sync.Mutex
	counts  map[string]int64
	tracing bool
	t0      time.Time
	events  []traceEvent
}

// traceEvent is one storage request on a timeline: when it began after
// the trace started, how long it took, and its kind.
type traceEvent struct {
	at, took time.Duration
	kind     string
}

// RoundTrip counts r and passes it on.
func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	k := c.classify(r)
	start := time.Now()
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[string]int64{}
	}
	c.counts[k]++
	c.mu.Unlock()
	resp, err := c.next.RoundTrip(r)
	c.mu.Lock()
	if c.tracing {
		c.events = append(c.events, traceEvent{at: start.Sub(c.t0), took: time.Since(start), kind: k})
	}
	c.mu.Unlock()
	return resp, err
}

func (c *countingTransport) startTrace() {
	c.mu.Lock()
	c.tracing, c.t0, c.events = true, time.Now(), nil
	c.mu.Unlock()
}

func (c *countingTransport) stopTrace() []traceEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tracing = false
	sort.Slice(c.events, func(i, j int) bool { return c.events[i].at < c.events[j].at })
	return c.events
}

func (c *countingTransport) reset() {
	c.mu.Lock()
	c.counts = map[string]int64{}
	c.mu.Unlock()
}

func (c *countingTransport) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// classifier names storage requests of one task hub by resource and
// operation, e.g. "queue send control", "table instances insert",
// "table batch" (an entity-group transaction: history appends).
type classifier struct {
	instances, history, partitions string // table names
	hubLower                       string // queue and container names start with it
}

func newClassifier(hub string) classifier {
	return classifier{
		instances:  hub + "Instances",
		history:    hub + "History",
		partitions: hub + "Partitions",
		hubLower:   strings.ToLower(hub),
	}
}

// background reports whether calls of kind happen whether or not work is
// running: polls of the queues and the ownership passes (partition table
// and app lease). They are the idle background, kept out of the calls per
// orchestration.
func background(kind string) bool {
	for _, p := range []string{"queue receive", "table partitions", "blob app lease"} {
		if strings.HasPrefix(kind, p) {
			return true
		}
	}
	return false
}

// classify names the request r.
func (c classifier) classify(r *http.Request) string {
	// Paths are /{account}/{resource}[/...]; Azurite puts the account in
	// the path.
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) < 2 {
		return "other " + r.Method + " " + r.URL.Path
	}
	res, rest := parts[1], parts[2:]
	switch {
	case res == "$batch":
		return "table batch"
	case strings.HasPrefix(res, c.instances):
		return "table instances " + tableOp(r, res)
	case strings.HasPrefix(res, c.history):
		return "table history " + tableOp(r, res)
	case strings.HasPrefix(res, c.partitions):
		return "table partitions " + tableOp(r, res)
	case res == "Tables" || strings.HasPrefix(res, "Tables("):
		return "table admin " + strings.ToLower(r.Method)
	case res == c.hubLower+"-applease":
		return "blob app lease " + strings.ToLower(r.Method)
	case res == c.hubLower+"-largemessages":
		return "blob large message " + strings.ToLower(r.Method)
	case strings.HasPrefix(res, c.hubLower+"-control-"):
		return queueOp(r, rest) + " control"
	case res == c.hubLower+"-workitems":
		return queueOp(r, rest) + " workitems"
	}
	return "other " + r.Method + " " + r.URL.Path
}

// tableOp names a table operation: res is the path segment after the
// account, such as "hubInstances" or "hubInstances(PartitionKey='x',RowKey=”)".
func tableOp(r *http.Request, res string) string {
	entity := strings.Contains(res, "(PartitionKey=")
	switch r.Method {
	case http.MethodGet:
		if entity {
			return "read"
		}
		return "query"
	case http.MethodPost:
		return "insert"
	case http.MethodPut:
		return "replace"
	case "MERGE", http.MethodPatch:
		return "merge"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(r.Method)
}

// queueOp names a queue operation from the method and the path after the
// queue name.
func queueOp(r *http.Request, rest []string) string {
	switch {
	case len(rest) == 1 && rest[0] == "messages":
		switch {
		case r.Method == http.MethodGet && r.URL.Query().Get("peekonly") == "true":
			return "queue peek"
		case r.Method == http.MethodGet:
			return "queue receive"
		case r.Method == http.MethodPost:
			return "queue send"
		case r.Method == http.MethodDelete:
			return "queue clear"
		}
	case len(rest) == 2 && rest[0] == "messages":
		switch r.Method {
		case http.MethodDelete:
			return "queue delete"
		case http.MethodPut:
			return "queue update"
		}
	case len(rest) == 0:
		return "queue admin " + strings.ToLower(r.Method)
	}
	return fmt.Sprintf("queue %s %s", strings.ToLower(r.Method), strings.Join(rest, "/"))
}

// callBreakdown is the storage cost of a batch of orchestrations, by kind.
type callBreakdown struct {
	runs int
	// work: kinds caused by the orchestrations (batch count minus the
	// same kind's count over an equally long idle window).
	work map[string]float64
	// batchBG and idleBG: background kinds, counted during the batch and
	// during the idle window.
	batchBG, idleBG map[string]int64
	// raw: every kind's count during the batch and the idle window.
	batch, idle map[string]int64
}

// breakdown splits the counts of a batch of runs and of an idle window of
// the same length into work and background.
func breakdown(batch, idle map[string]int64, runs int) callBreakdown {
	b := callBreakdown{runs: runs, work: map[string]float64{}, batchBG: map[string]int64{}, idleBG: map[string]int64{}, batch: batch, idle: idle}
	for k, n := range batch {
		if background(k) {
			b.batchBG[k] = n
			continue
		}
		if net := n - idle[k]; net > 0 {
			b.work[k] = float64(net) / float64(runs)
		}
	}
	for k, n := range idle {
		if background(k) {
			b.idleBG[k] = n
		}
	}
	return b
}

// perRun is the total of the work kinds per orchestration.
func (b callBreakdown) perRun() float64 {
	var t float64
	for _, v := range b.work {
		t += v
	}
	return t
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
