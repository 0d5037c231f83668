package clock

import (
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

var Clock = durable.NewOrchestrator("Clock", func(ctx *durable.Context, start time.Time) (time.Duration, error) {
	now := time.Now()            // want `^time.Now in orchestrator "Clock": the clock reads differently on every replay; use ctx.CurrentTime\(\)`
	_ = time.Since(start)        // want `time.Since in orchestrator "Clock": .*use ctx.CurrentTime\(\)`
	_ = time.Until(start)        // want `time.Until in orchestrator "Clock": .*use ctx.CurrentTime\(\)`
	time.Sleep(time.Second)      // want `time.Sleep in orchestrator "Clock": .*use ctx.Sleep\(d\), a durable timer`
	<-time.After(time.Second)    // want `time.After in orchestrator "Clock": .*use ctx.CreateTimer` `channel receive`
	_ = time.Tick(time.Second)   // want `time.Tick in orchestrator "Clock": .*ctx.CreateTimer`
	_ = time.NewTimer(0)         // want `time.NewTimer in orchestrator "Clock"`
	_ = time.NewTicker(1)        // want `time.NewTicker in orchestrator "Clock"`
	time.AfterFunc(0, func() {}) // want `time.AfterFunc in orchestrator "Clock"`
	clock := time.Now            // want `time.Now in orchestrator "Clock"`
	_ = clock

	// The replay-safe clock, durations and time arithmetic are fine.
	at := ctx.CurrentTime().Add(time.Hour)
	_ = ctx.Sleep(at.Sub(ctx.CurrentTime()))
	_ = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	return now.Sub(start) + time.Minute, nil
})

// Named orchestrator functions passed to NewOrchestrator carry its name.
func waitNamed(ctx *durable.Context, _ any) (string, error) {
	time.Sleep(time.Second) // want `time.Sleep in orchestrator "Named"`
	return "", nil
}

var Named = durable.NewOrchestrator("Named", waitNamed)
