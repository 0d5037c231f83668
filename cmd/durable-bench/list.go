package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// benchList fills the Instances table with n rows (a quarter Running, the
// rest Completed) and lists the Running ones through the management API,
// page by page, as a client would.
func (b *bench) benchList(ctx context.Context, n int) error {
	fill := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	created := time.Now().UTC()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				st := history.StatusCompleted
				if i%4 == 0 {
					st = history.StatusRunning
				}
				row := backend.InstanceState{InstanceID: fmt.Sprintf("list-%06d", i), Name: sampleOrchestrator.Name(), ExecutionID: history.NewID(),
					Status: st, CreatedTime: created, LastUpdatedTime: created, Input: `"x"`}
				if _, err := b.plain.CreateInstance(ctx, row); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("create row %s: %w", row.InstanceID, err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	fillTime := time.Since(fill)

	begin := time.Now()
	var first time.Duration
	token, pages, found := "", 0, 0
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.apiURL+"/instances?runtimeStatus=Running&top=1000&showInput=false", nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("x-ms-continuation-token", token)
		}
		resp, err := b.web.Do(req)
		if err != nil {
			return fmt.Errorf("list page %d: %w", pages, err)
		}
		var page []json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("list page %d: status %d, %v", pages, resp.StatusCode, err)
		}
		if pages == 0 {
			first = time.Since(begin)
		}
		pages++
		found += len(page)
		if token = resp.Header.Get("x-ms-continuation-token"); token == "" {
			break
		}
	}
	total := time.Since(begin)
	// The W1..W4 instances are Completed, so only the filled rows match.
	if want := (n + 3) / 4; found != want {
		return fmt.Errorf("listed %d Running instances, want %d", found, want)
	}
	fmt.Fprintf(b.out, "\nListing the Running instances among %d rows through the management API (filled in %s)\n", n, fillTime.Round(time.Millisecond))
	fmt.Fprintf(b.out, "    %d found in %d pages: first page %s, total %s\n", found, pages, first.Round(time.Millisecond), total.Round(time.Millisecond))
	b.sum.add("list_total_ms", msR(total))
	return nil
}
