package engine

import (
	"context"
	"errors"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// appLeaseLoop renews the task hub's app lease (taken by Start). When
// another app has taken it, this worker stops processing every partition
// and claims none until it gets the lease back; other renewal failures
// (storage outages) change nothing, as in Durable Task.
func (e *Engine) appLeaseLoop() {
	defer e.wg.Done()
	interval := e.opts.AppLeaseRenewInterval
	for sleepCtx(e.ctx, interval) {
		ctx, cancel := context.WithTimeout(e.ctx, interval)
		if e.appLeaseLost() {
			if err := e.be.AcquireAppLease(ctx); err == nil {
				e.setAppLeaseLost(false)
				e.log.Info("took the app lease back; processing the task hub again", "hub", e.be.HubName())
			} else if e.ctx.Err() == nil {
				e.log.Warn("the app lease is still held elsewhere; not processing the task hub", "hub", e.be.HubName(), "err", err)
			}
			cancel()
			continue
		}
		err := e.be.RenewAppLease(ctx)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, backend.ErrHubInUse):
			e.log.Error("lost the task hub's app lease to another app; no longer processing the hub", "hub", e.be.HubName(), "err", err)
			e.setAppLeaseLost(true)
			for _, p := range e.OwnedPartitions() {
				e.dropPartition(p)
			}
		case e.ctx.Err() == nil:
			e.log.Warn("could not renew the app lease; still processing the hub", "hub", e.be.HubName(), "err", err)
		}
	}
}

func (e *Engine) appLeaseLost() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leaseLost
}

func (e *Engine) setAppLeaseLost(lost bool) {
	e.mu.Lock()
	e.leaseLost = lost
	e.mu.Unlock()
}
