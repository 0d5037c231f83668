// Package orchestrator is the sample's orchestrator, the Go counterpart of
// the JavaScript sample's Orchestrator/index.js. It has no function.json:
// the task hub triggers orchestrators from its control queues, not the
// Functions host.
package orchestrator

import (
	"github.com/go-durable/durablefunctions/Hello"
	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// Orchestrator calls Hello for three cities in sequence and returns the
// greetings: ["Hello Tokyo!","Hello Seattle!","Hello London!"].
var Orchestrator = durable.NewOrchestrator("Orchestrator", func(ctx *durable.Context, _ any) ([]string, error) {
	var outputs []string
	for _, city := range []string{"Tokyo", "Seattle", "London"} {
		greeting, err := hello.Activity.Call(ctx, city).Await()
		if err != nil {
			return nil, err
		}
		outputs = append(outputs, greeting)
	}
	return outputs, nil
})
