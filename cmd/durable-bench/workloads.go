package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// userPollInterval is how long the user-view measurement waits between a
// status answer that is not final and the next GET.
const userPollInterval = 2 * time.Millisecond

// sampleInProcess starts one sample orchestration with the client and
// waits for the engine's completion notification (or the status row).
func (b *bench) sampleInProcess(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.sampleTimeout)
	defer cancel()
	t0 := time.Now()
	id, err := b.app.StartNew(ctx, sampleOrchestrator.Name(), client.StartOptions{})
	if err != nil {
		return 0, fmt.Errorf("start the sample: %w", err)
	}
	st, err := b.waitInstance(ctx, id, 5*time.Millisecond)
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if err := checkSample(st.Output); err != nil {
		return 0, fmt.Errorf("sample instance %s: %w", id, err)
	}
	return d, nil
}

// startLinks is the part of the check-status payload the bench uses.
type startLinks struct {
	ID                string `json:"id"`
	StatusQueryGetURI string `json:"statusQueryGetUri"`
}

// userStatus is the part of the status payload the bench checks.
type userStatus struct {
	InstanceID    string          `json:"instanceId"`
	RuntimeStatus string          `json:"runtimeStatus"`
	Output        json.RawMessage `json:"output"`
}

// postStart starts a sample instance as a user does: POST to the start
// route, expecting 202 with the check-status payload.
func (b *bench) postStart(ctx context.Context) (startLinks, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.startURL, nil)
	if err != nil {
		return startLinks{}, err
	}
	resp, err := b.web.Do(req)
	if err != nil {
		return startLinks{}, fmt.Errorf("POST %s: %w", b.startURL, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return startLinks{}, fmt.Errorf("POST %s: read the answer: %w", b.startURL, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return startLinks{}, fmt.Errorf("POST %s answered %d, want 202: %s", b.startURL, resp.StatusCode, bytes.TrimSpace(body))
	}
	var links startLinks
	if err := json.Unmarshal(body, &links); err != nil {
		return startLinks{}, fmt.Errorf("POST %s: the 202 body is not a check-status payload: %w: %s", b.startURL, err, body)
	}
	if links.ID == "" || links.StatusQueryGetURI == "" {
		return startLinks{}, fmt.Errorf("POST %s: the check-status payload lacks id or statusQueryGetUri: %s", b.startURL, body)
	}
	if loc := resp.Header.Get("Location"); loc != links.StatusQueryGetURI {
		return startLinks{}, fmt.Errorf("POST %s: Location %q differs from statusQueryGetUri %q", b.startURL, loc, links.StatusQueryGetURI)
	}
	return links, nil
}

// sampleViaHTTP runs one sample instance the way a user sees it: POST the
// start route, then GET statusQueryGetUri every 2 ms until it answers 200.
// It returns the time from the POST to the 200 and the number of GETs.
func (b *bench) sampleViaHTTP(ctx context.Context) (time.Duration, int, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.sampleTimeout)
	defer cancel()
	t0 := time.Now()
	links, err := b.postStart(ctx)
	if err != nil {
		return 0, 0, err
	}
	for gets := 1; ; gets++ {
		code, body, err := b.get(ctx, links.StatusQueryGetURI)
		if err != nil {
			if ctx.Err() != nil {
				return 0, 0, fmt.Errorf("instance %s: statusQueryGetUri did not answer 200 within %v (%d GETs)", links.ID, b.cfg.sampleTimeout, gets-1)
			}
			return 0, 0, fmt.Errorf("instance %s: GET %s: %w", links.ID, links.StatusQueryGetURI, err)
		}
		switch code {
		case http.StatusOK:
			d := time.Since(t0)
			var st userStatus
			if err := json.Unmarshal(body, &st); err != nil {
				return 0, 0, fmt.Errorf("instance %s: the 200 status body is not a status payload: %w: %s", links.ID, err, body)
			}
			if st.InstanceID != links.ID || st.RuntimeStatus != "Completed" {
				return 0, 0, fmt.Errorf("instance %s: status answered 200 with instanceId %q, runtimeStatus %q, want %q, Completed", links.ID, st.InstanceID, st.RuntimeStatus, links.ID)
			}
			if err := checkSample(string(st.Output)); err != nil {
				return 0, 0, fmt.Errorf("instance %s: %w", links.ID, err)
			}
			return d, gets, nil
		case http.StatusAccepted:
		default:
			return 0, 0, fmt.Errorf("instance %s: GET %s answered %d, want 202 or 200: %s", links.ID, links.StatusQueryGetURI, code, bytes.TrimSpace(body))
		}
		if !sleepCtx(ctx, userPollInterval) {
			return 0, 0, fmt.Errorf("instance %s: statusQueryGetUri did not answer 200 within %v (%d GETs)", links.ID, b.cfg.sampleTimeout, gets)
		}
	}
}

func (b *bench) get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := b.web.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// waitInstance waits until instance id completes (by the engine's
// notification; storage is polled every poll only if the engine does not
// track the instance) and checks that it Completed. ctx's deadline bounds
// the wait; passing it is reported with the instance's last status.
func (b *bench) waitInstance(ctx context.Context, id string, poll time.Duration) (client.Status, error) {
	st, err := b.watch.WaitForCompletion(ctx, id, poll)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			last := "unknown"
			if s, err := b.watch.GetStatus(rctx, id, false); err == nil {
				last = s.Status.String()
			} else {
				last += " (" + err.Error() + ")"
			}
			return st, fmt.Errorf("instance %s did not finish in time (last status %s): %w", id, last, err)
		}
		return st, fmt.Errorf("wait for instance %s: %w", id, err)
	}
	if st.Status != history.StatusCompleted {
		return st, fmt.Errorf("instance %s ended %s, want Completed; output %s", id, st.Status, st.Output)
	}
	return st, nil
}

// burstResult holds the figures of a burst.
type burstResult struct {
	tableRate   float64         // n / (last CompletedTime - first CreatedTime)
	tableSpan   time.Duration   // last CompletedTime - first CreatedTime
	wall        time.Duration   // first POST to the last completion notification
	lat         []time.Duration // each instance's POST to its completion notification
	startErrors int
}

// burst starts n sample instances through the HTTP start route from
// `clients` concurrent clients, waits for all of them, and reads their
// Instances rows back to compute the throughput the table records.
func (b *bench) burst(ctx context.Context, n, clients int) (burstResult, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.burstTimeout)
	defer cancel()
	ids := make([]string, n)
	lat := make([]time.Duration, n)
	var ends sync.Map // index → completion time
	var (
		mu    sync.Mutex
		errs  []error
		next  atomic.Int64
		posts sync.WaitGroup
		waits sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	begin := time.Now()
	for c := 0; c < clients; c++ {
		posts.Add(1)
		go func() {
			defer posts.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				links, err := b.postStart(ctx)
				if err != nil {
					fail(err)
					continue
				}
				ids[i] = links.ID
				waits.Add(1)
				go func() {
					defer waits.Done()
					st, err := b.waitInstance(ctx, links.ID, 500*time.Millisecond)
					end := time.Now()
					if err == nil {
						err = checkSample(st.Output)
					}
					if err != nil {
						fail(fmt.Errorf("instance %s: %w", links.ID, err))
						return
					}
					lat[i] = end.Sub(t0)
					ends.Store(i, end)
				}()
			}
		}()
	}
	posts.Wait()
	waits.Wait()
	if len(errs) > 0 {
		return burstResult{}, fmt.Errorf("%d of %d burst instances failed; first: %w", len(errs), n, errs[0])
	}
	var last time.Time
	ends.Range(func(_, v any) bool {
		if t := v.(time.Time); t.After(last) {
			last = t
		}
		return true
	})
	res := burstResult{wall: last.Sub(begin), lat: lat}

	// Read every row back through the store.
	rows := make([]client.Status, n)
	next.Store(0)
	var reads sync.WaitGroup
	for w := 0; w < 16; w++ {
		reads.Add(1)
		go func() {
			defer reads.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				st, err := b.watch.GetStatus(ctx, ids[i], false)
				if err != nil {
					fail(fmt.Errorf("read back instance %s: %w", ids[i], err))
					continue
				}
				rows[i] = st
			}
		}()
	}
	reads.Wait()
	if len(errs) > 0 {
		return burstResult{}, fmt.Errorf("%d of %d Instances rows could not be read back; first: %w", len(errs), n, errs[0])
	}
	var firstCreated, lastCompleted time.Time
	for i, st := range rows {
		if st.Status != history.StatusCompleted || st.CreatedTime.IsZero() || st.CompletedTime.Before(st.CreatedTime) {
			return burstResult{}, fmt.Errorf("Instances row of %s reads status %s, CreatedTime %v, CompletedTime %v: want Completed with CompletedTime >= CreatedTime",
				ids[i], st.Status, st.CreatedTime, st.CompletedTime)
		}
		if err := checkSample(st.Output); err != nil {
			return burstResult{}, fmt.Errorf("Instances row of %s: %w", ids[i], err)
		}
		if firstCreated.IsZero() || st.CreatedTime.Before(firstCreated) {
			firstCreated = st.CreatedTime
		}
		if st.CompletedTime.After(lastCompleted) {
			lastCompleted = st.CompletedTime
		}
	}
	res.tableSpan = lastCompleted.Sub(firstCreated)
	if res.tableSpan <= 0 {
		return burstResult{}, fmt.Errorf("the Instances rows span %v from first CreatedTime to last CompletedTime; cannot compute a throughput", res.tableSpan)
	}
	res.tableRate = float64(n) / res.tableSpan.Seconds()
	return res, nil
}

// runShape starts orchestrator name with input n, waits for it in process
// and checks that its output is want. It returns the start-to-completed
// time.
func (b *bench) runShape(ctx context.Context, name string, n, want int, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t0 := time.Now()
	id, err := b.app.StartNew(ctx, name, client.StartOptions{Input: n})
	if err != nil {
		return 0, fmt.Errorf("start %s(%d): %w", name, n, err)
	}
	st, err := b.waitInstance(ctx, id, 100*time.Millisecond)
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("%s(%d): %w", name, n, err)
	}
	if err := checkInt(st.Output, want); err != nil {
		return 0, fmt.Errorf("%s(%d) instance %s: %w", name, n, id, err)
	}
	return d, nil
}

// longSequence runs one Sequence orchestration of n activities and
// returns the mean time per activity over its first and last w
// activities, from the times the activities recorded, and its total time.
func (b *bench) longSequence(ctx context.Context, n, w int) (first, last, total time.Duration, err error) {
	rec := newStepRecorder(n)
	armed.Store(rec)
	defer armed.Store(nil)
	total, err = b.runShape(ctx, sequenceOrchestrator.Name(), n, n, b.cfg.longTimeout)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%w (%d of %d activities had run)", err, rec.recorded(), n)
	}
	if k := rec.outside.Load(); k > 0 {
		return 0, 0, 0, fmt.Errorf("Sequence(%d): %d activity calls had an input outside 0..%d", n, k, n-1)
	}
	if first, last, err = rec.windows(w); err != nil {
		return 0, 0, 0, fmt.Errorf("Sequence(%d): %w", n, err)
	}
	if k := rec.repeats.Load(); k > 0 {
		fmt.Fprintf(b.progress, "note: %d activities of the long sequence ran more than once (at-least-once); their first run counts\n", k)
	}
	return first, last, total, nil
}

// sleepCtx waits for d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
