// Package bad is an orchestrator package with determinism mistakes, checked
// by TestVetTool through go vet -vettool against the real durable package.
package bad

import (
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// Stamp reads the wall clock.
var Stamp = durable.NewOrchestrator("Stamp", func(ctx *durable.Context, _ any) (string, error) {
	return time.Now().String(), nil
})

// Quiet does the same on purpose and says so.
var Quiet = durable.NewOrchestrator("Quiet", func(ctx *durable.Context, _ any) (string, error) {
	return time.Now().String(), nil //durable:nondeterministic-ok
})
