package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// The entity workloads:
//
//   - E1, signals into one Counter through the HTTP entity route, from
//     several clients at once; E2, the same spread over many Counters;
//   - E3, signals from orchestrations (each sending a share), into one
//     Counter and spread over many;
//   - E4, one orchestration calling "get" on a Counter in sequence: the
//     round trip of each call from its history, and from outside.
//
// A signal run ends when the bench's uncounted client reads every Counter
// holding its share; the rate is signals / (that moment - first send).

// Goals and context printed with the entity figures (issue 10).
const (
	goalSignalsPerS = 250 // into one entity, this machine, Azurite
	goalCallP50MS   = 15  // CallEntity round trip p50
	dfOpsPerS       = 64  // Durable Functions' published figure for one entity on Azure Storage
)

// entityPollOne and entityPollMany are how often a signal run reads the
// Counters back while waiting for their sums.
const (
	entityPollOne  = 5 * time.Millisecond
	entityPollMany = 20 * time.Millisecond
)

// signalRun is the outcome of one signal workload run.
type signalRun struct {
	n        int           // signals sent
	elapsed  time.Duration // first send until every Counter held its share
	sends    int           // HTTP signals, or orchestrations started
	sendTime time.Duration // first send until the last one was accepted (HTTP) or started (orchestrations)
	calls    map[string]int64
}

func (r signalRun) rate() float64     { return float64(r.n) / r.elapsed.Seconds() }
func (r signalRun) sendRate() float64 { return float64(r.sends) / r.sendTime.Seconds() }

// perSignal describes the app's storage calls of the run per signal, by
// kind, leaving out the idle background (polls, ownership).
func (r signalRun) perSignal() (total float64, kinds string) {
	for _, k := range sortedKeys(r.calls) {
		if background(k) {
			continue
		}
		v := float64(r.calls[k]) / float64(r.n)
		total += v
		if kinds != "" {
			kinds += ", "
		}
		kinds += fmt.Sprintf("%s %.2f", k, v)
	}
	return total, kinds
}

// entityKeys returns the keys of a run: "{prefix}-0" .. "{prefix}-{n-1}".
func entityKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = prefix + "-" + strconv.Itoa(i)
	}
	return keys
}

// shares returns how many of n signals, sent round-robin (signal g to key
// g mod len(keys)), each key receives.
func shares(keys []string, n int) map[string]int {
	want := make(map[string]int, len(keys))
	for i, k := range keys {
		want[k] = n / len(keys)
		if i < n%len(keys) {
			want[k]++
		}
	}
	return want
}

// signalHTTP sends n "add" 1 signals through POST {apiURL}/entities/Counter/{key}?op=add
// from `clients` concurrent clients, round-robin over keys, and waits until
// every Counter holds its share.
func (b *bench) signalHTTP(ctx context.Context, keys []string, n, clients int) (signalRun, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.entityTimeout)
	defer cancel()
	urls := make([]string, len(keys))
	for i, k := range keys {
		urls[i] = b.apiURL + "/entities/" + counterEntity.Name() + "/" + url.PathEscape(k) + "?op=add"
	}
	var (
		next     atomic.Int64
		lastSent atomic.Int64 // UnixNano of the latest 202
		mu       sync.Mutex
		errs     []error
		wg       sync.WaitGroup
	)
	begin := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				g := int(next.Add(1)) - 1
				if g >= n {
					return
				}
				if err := b.postSignal(ctx, urls[g%len(urls)]); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					continue
				}
				now := time.Now().UnixNano()
				for {
					old := lastSent.Load()
					if now <= old || lastSent.CompareAndSwap(old, now) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return signalRun{}, fmt.Errorf("%d of %d signals were not accepted; first: %w", len(errs), n, errs[0])
	}
	sent := time.Unix(0, lastSent.Load()).Sub(begin)
	end, err := b.waitCounters(ctx, shares(keys, n))
	if err != nil {
		return signalRun{}, err
	}
	return signalRun{n: n, elapsed: end.Sub(begin), sends: n, sendTime: sent}, nil
}

// postSignal POSTs body 1 to u, expecting 202.
func (b *bench) postSignal(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader([]byte("1")))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.web.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", u, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("POST %s: read the answer: %w", u, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST %s answered %d, want 202: %s", u, resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// signalOrch starts `orchs` EntitySignaler orchestrations in process, each
// sending `per` "add" 1 signals (orchestration i's signal j is signal
// i*per+j of the run, sent round-robin over keys), and waits until every
// Counter holds its share and every orchestration completed.
func (b *bench) signalOrch(ctx context.Context, keys []string, orchs, per int) (signalRun, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.entityTimeout)
	defer cancel()
	ids := make([]string, orchs)
	begin := time.Now()
	for i := range ids {
		id, err := b.app.StartNew(ctx, signalerOrchestrator.Name(), client.StartOptions{
			Input: signalerInput{Keys: keys, First: i * per, Signals: per}})
		if err != nil {
			return signalRun{}, fmt.Errorf("start %s %d of %d: %w", signalerOrchestrator.Name(), i+1, orchs, err)
		}
		ids[i] = id
	}
	started := time.Since(begin)
	end, err := b.waitCounters(ctx, shares(keys, orchs*per))
	if err != nil {
		return signalRun{}, err
	}
	for _, id := range ids {
		st, err := b.waitInstance(ctx, id, 100*time.Millisecond)
		if err != nil {
			return signalRun{}, err
		}
		if err := checkInt(st.Output, per); err != nil {
			return signalRun{}, fmt.Errorf("%s instance %s: %w", signalerOrchestrator.Name(), id, err)
		}
	}
	return signalRun{n: orchs * per, elapsed: end.Sub(begin), sends: orchs, sendTime: started}, nil
}

// waitCounters reads the Counters of want back (one by one for a single
// key, by listing for several) until each holds exactly its share, and
// returns when it saw that. A Counter past its share fails the run.
func (b *bench) waitCounters(ctx context.Context, want map[string]int) (time.Time, error) {
	poll := entityPollMany
	if len(want) == 1 {
		poll = entityPollOne
	}
	var lastErr error
	have := map[string]int{}
	for {
		done, err := b.readCounters(ctx, want, have)
		if err != nil {
			return time.Time{}, err
		}
		if done {
			return time.Now(), nil
		}
		if !sleepCtx(ctx, poll) {
			short := 0
			for k, w := range want {
				if have[k] != w {
					short++
					if lastErr == nil {
						lastErr = fmt.Errorf("Counter %q holds %d, want %d", k, have[k], w)
					}
				}
			}
			return time.Time{}, fmt.Errorf("%d of %d Counters short of their sums after %v; e.g. %w", short, len(want), b.cfg.entityTimeout, lastErr)
		}
	}
}

// readCounters reads the Counters of want into have and reports whether
// every one holds its share.
func (b *bench) readCounters(ctx context.Context, want, have map[string]int) (bool, error) {
	if len(want) == 1 {
		for k := range want {
			v, err := client.ReadEntity(ctx, b.watch, counterEntity, k)
			if errors.Is(err, client.ErrNotFound) {
				return false, nil
			}
			if err != nil {
				if ctx.Err() != nil {
					return false, nil // reported by the caller as a timeout
				}
				return false, fmt.Errorf("read Counter %q: %w", k, err)
			}
			have[k] = v
		}
	} else {
		q := client.EntityQuery{Name: counterEntity.Name(), WithState: true, PageSize: 1000}
		for {
			page, next, err := b.watch.ListEntities(ctx, q)
			if err != nil {
				if ctx.Err() != nil {
					return false, nil
				}
				return false, fmt.Errorf("list Counters: %w", err)
			}
			for _, e := range page {
				if _, ok := want[e.ID.Key]; !ok {
					continue
				}
				v, err := strconv.Atoi(e.State)
				if err != nil {
					return false, fmt.Errorf("Counter %q holds %s, not an integer: %w", e.ID.Key, e.State, err)
				}
				have[e.ID.Key] = v
			}
			if next == "" {
				break
			}
			q.Continuation = next
		}
	}
	done := true
	for k, w := range want {
		switch h := have[k]; {
		case h > w:
			return false, fmt.Errorf("Counter %q holds %d, more than the %d signals sent to it: an operation applied twice", k, h, w)
		case h < w:
			done = false
		}
	}
	return done, nil
}

// callRun is the outcome of one CallEntity run.
type callRun struct {
	calls   int
	lat     []time.Duration // per call, from history
	outside time.Duration   // start to completion notification
}

// callEntities runs one EntityCaller orchestration making `calls`
// sequential "get" calls on a fresh Counter, and reads each call's round
// trip from its history: from the OrchestratorStarted of the episode that
// sent the request to that of the episode that received the response.
func (b *bench) callEntities(ctx context.Context, key string, calls int) (callRun, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.entityTimeout)
	defer cancel()
	t0 := time.Now()
	id, err := b.app.StartNew(ctx, callerOrchestrator.Name(), client.StartOptions{Input: callerInput{Key: key, Calls: calls}})
	if err != nil {
		return callRun{}, fmt.Errorf("start %s: %w", callerOrchestrator.Name(), err)
	}
	st, err := b.waitInstance(ctx, id, 100*time.Millisecond)
	outside := time.Since(t0)
	if err != nil {
		return callRun{}, err
	}
	if err := checkInt(st.Output, calls); err != nil {
		return callRun{}, fmt.Errorf("%s instance %s: %w", callerOrchestrator.Name(), id, err)
	}
	events, err := b.watch.GetHistory(ctx, id)
	if err != nil {
		return callRun{}, fmt.Errorf("%s instance %s: load the history: %w", callerOrchestrator.Name(), id, err)
	}
	lat, err := callLatencies(events)
	if err != nil {
		return callRun{}, fmt.Errorf("%s instance %s: %w", callerOrchestrator.Name(), id, err)
	}
	if len(lat) != calls {
		return callRun{}, fmt.Errorf("%s instance %s: history holds %d answered calls, want %d", callerOrchestrator.Name(), id, len(lat), calls)
	}
	return callRun{calls: calls, lat: lat, outside: outside}, nil
}

// callLatencies returns, for each entity call in events (in the order
// sent), the time from the OrchestratorStarted of the episode that sent
// the request to the OrchestratorStarted of the episode in which its
// response arrived. Every call must have been answered, later.
func callLatencies(events []history.Event) ([]time.Duration, error) {
	var (
		episode time.Time
		order   []string
		sentAt  = map[string]time.Time{}
		gotAt   = map[string]time.Time{}
	)
	for _, ev := range events {
		switch ev.Type {
		case history.OrchestratorStarted:
			episode = ev.Timestamp
		case history.EventSent:
			r, err := history.DecodeEntityRequest(history.Event{Type: history.EventRaised, Name: ev.Name, Input: ev.Input})
			if err != nil || r.Signal || r.IsLockRequest() {
				continue // not a call
			}
			if episode.IsZero() {
				return nil, fmt.Errorf("the request %s was sent before any OrchestratorStarted", r.ID)
			}
			key := history.EntityResponseEventName(r.ID)
			if _, dup := sentAt[key]; dup {
				return nil, fmt.Errorf("the request %s was sent twice", r.ID)
			}
			sentAt[key] = episode
			order = append(order, key)
		case history.EventRaised:
			if _, ok := sentAt[ev.Name]; ok {
				if _, dup := gotAt[ev.Name]; !dup {
					gotAt[ev.Name] = episode
				}
			}
		}
	}
	lat := make([]time.Duration, 0, len(order))
	for i, k := range order {
		got, ok := gotAt[k]
		if !ok {
			return nil, fmt.Errorf("call %d (request %s) has no response in the history", i+1, k)
		}
		d := got.Sub(sentAt[k])
		if d <= 0 {
			return nil, fmt.Errorf("call %d (request %s) was answered in the episode that sent it (%v): want a later one", i+1, k, d)
		}
		lat = append(lat, d)
	}
	return lat, nil
}

// medianRun returns the run of median rate.
func medianRun(runs []signalRun) signalRun {
	byRate := make([]time.Duration, len(runs)) // rates as durations for pct
	for i, r := range runs {
		byRate[i] = time.Duration(r.rate() * 1000)
	}
	m := pct(byRate, 50)
	for _, r := range runs {
		if time.Duration(r.rate()*1000) == m {
			return r
		}
	}
	return runs[0]
}

// entities runs the entity workloads and prints their figures.
func (b *bench) entities(ctx context.Context) error {
	c := b.cfg
	fmt.Fprintf(b.out, "\nEntities (Counter \"add\" 1 per signal; goals: >= %d signals/s into one entity, CallEntity p50 <= %d ms;\n", goalSignalsPerS, goalCallP50MS)
	fmt.Fprintf(b.out, "    for context, Durable Functions publishes %d operations/s for one entity on Azure Storage), medians of %d runs\n", dfOpsPerS, c.entityRepeat)
	b.sum.add("entity_runs", c.entityRepeat)
	type shape struct {
		label, key string
		keys       int
		orch       bool
	}
	var shapes []shape
	if c.entitySignals > 0 {
		shapes = append(shapes,
			shape{fmt.Sprintf("E1  %d signals into one entity through POST .../entities/Counter/{key}?op=add, %d clients", c.entitySignals, c.entityClients), "e1_http_one", 1, false},
			shape{fmt.Sprintf("E2  %d signals into %d entities (round-robin) through HTTP, %d clients", c.entitySignals, c.entityKeys, c.entityClients), "e2_http_many", c.entityKeys, false})
	}
	if c.entityOrchs > 0 {
		n := c.entityOrchs * c.entityOrchSignals
		shapes = append(shapes,
			shape{fmt.Sprintf("E3  %d signals into one entity from %d orchestrations (%d each)", n, c.entityOrchs, c.entityOrchSignals), "e3_orch_one", 1, true},
			shape{fmt.Sprintf("E3  %d signals into %d entities (round-robin) from %d orchestrations (%d each)", n, c.entityKeys, c.entityOrchs, c.entityOrchSignals), "e3_orch_many", c.entityKeys, true})
	}
	for si, s := range shapes {
		b.note("%s, %d runs", s.label, c.entityRepeat)
		runs := make([]signalRun, 0, c.entityRepeat)
		for i := 0; i < c.entityRepeat; i++ {
			b.eng.WaitBackground()
			keys := entityKeys(fmt.Sprintf("s%d-r%d", si, i), s.keys)
			var r signalRun
			var err error
			b.counter.reset()
			if s.orch {
				r, err = b.signalOrch(ctx, keys, c.entityOrchs, c.entityOrchSignals)
			} else {
				r, err = b.signalHTTP(ctx, keys, c.entitySignals, c.entityClients)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", s.label, err)
			}
			r.calls = b.counter.snapshot()
			runs = append(runs, r)
		}
		m := medianRun(runs)
		fmt.Fprintln(b.out, s.label)
		var all []string
		for _, r := range runs {
			all = append(all, fmt.Sprintf("%.0f", r.rate()))
		}
		sender := "signals accepted (202s)"
		if s.orch {
			sender = "orchestrations started"
		}
		fmt.Fprintf(b.out, "    %.0f signals/s applied (%d in %s; runs: %v)  -  %.0f/s %s\n",
			m.rate(), m.n, m.elapsed.Round(time.Millisecond), all, m.sendRate(), sender)
		total, kinds := m.perSignal()
		fmt.Fprintf(b.out, "    app's storage calls per signal: %.2f (%s)\n", total, kinds)
		if s.keys == 1 {
			fmt.Fprintf(b.out, "    goal >= %d signals/s into one entity: %s; Durable Functions: %d operations/s\n", goalSignalsPerS, versus(m.rate(), goalSignalsPerS), dfOpsPerS)
		}
		b.sum.add(s.key+"_signals_per_s", round2(m.rate()))
		if s.orch {
			b.sum.add(s.key+"_orch_starts_per_s", round2(m.sendRate()))
		} else {
			b.sum.add(s.key+"_sent_per_s", round2(m.sendRate()))
		}
		b.sum.add(s.key+"_calls_per_signal", round2(total))
	}
	if c.entityCalls > 0 {
		b.note("E4  one orchestration making %d sequential CallEntity \"get\", %d runs", c.entityCalls, c.entityRepeat)
		var p50, p90, p99, mean, outside []time.Duration
		for i := 0; i < c.entityRepeat; i++ {
			b.eng.WaitBackground()
			r, err := b.callEntities(ctx, fmt.Sprintf("call-r%d", i), c.entityCalls)
			if err != nil {
				return fmt.Errorf("E4 (CallEntity round trip): %w", err)
			}
			var sum time.Duration
			for _, d := range r.lat {
				sum += d
			}
			p50, p90, p99 = append(p50, pct(r.lat, 50)), append(p90, pct(r.lat, 90)), append(p99, pct(r.lat, 99))
			mean = append(mean, sum/time.Duration(len(r.lat)))
			outside = append(outside, r.outside/time.Duration(r.calls))
		}
		fmt.Fprintf(b.out, "E4  one orchestration making %d sequential CallEntity[int](\"get\") on a Counter\n", c.entityCalls)
		fmt.Fprintf(b.out, "    round trip from history (sending episode's OrchestratorStarted to the receiving one's):\n")
		fmt.Fprintf(b.out, "      p50 %s  p90 %s  p99 %s  mean %s   (medians over runs; p50 of each run: %s)\n",
			fmtMS(pct(p50, 50)), fmtMS(pct(p90, 50)), fmtMS(pct(p99, 50)), fmtMS(pct(mean, 50)), fmtList(p50))
		fmt.Fprintf(b.out, "    from outside (start to completion notification / %d): %s per call\n", c.entityCalls, fmtMS(pct(outside, 50)))
		fmt.Fprintf(b.out, "    goal p50 <= %d ms: %s\n", goalCallP50MS, versusMax(ms(pct(p50, 50)), goalCallP50MS))
		b.sum.add("e4_calls", c.entityCalls)
		b.sum.add("e4_call_p50_ms", msR(pct(p50, 50)))
		b.sum.add("e4_call_p90_ms", msR(pct(p90, 50)))
		b.sum.add("e4_call_p99_ms", msR(pct(p99, 50)))
		b.sum.add("e4_call_mean_ms", msR(pct(mean, 50)))
		b.sum.add("e4_call_outside_ms", msR(pct(outside, 50)))
	}
	b.sum.add("goal_entity_signals_per_s", goalSignalsPerS)
	b.sum.add("goal_call_p50_ms", goalCallP50MS)
	b.sum.add("df_entity_ops_per_s", dfOpsPerS)
	return nil
}

// versus says how a rate compares with a goal it should reach.
func versus(v float64, goal int) string {
	if v >= float64(goal) {
		return fmt.Sprintf("met (%.1f× the goal)", v/float64(goal))
	}
	return fmt.Sprintf("missed by %.0f%% (%.0f short)", 100*(1-v/float64(goal)), float64(goal)-v)
}

// versusMax says how a figure compares with a goal it should stay under.
func versusMax(v float64, goal int) string {
	if v <= float64(goal) {
		return fmt.Sprintf("met (%.2f ms)", v)
	}
	return fmt.Sprintf("missed by %.2f ms (%.0f%% over)", v-float64(goal), 100*(v/float64(goal)-1))
}

func fmtList(d []time.Duration) string {
	s := ""
	for i, x := range d {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%.2f", ms(x))
	}
	return "[" + s + "] ms"
}
