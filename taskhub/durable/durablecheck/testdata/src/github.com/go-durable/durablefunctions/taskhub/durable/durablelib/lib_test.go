package durablelib

import (
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// Test files of the library are user code like any other.
var testOrch = durable.NewOrchestrator("LibTest", func(ctx *durable.Context, _ any) (time.Time, error) {
	return time.Now(), nil // want `time.Now in orchestrator "LibTest"`
})
