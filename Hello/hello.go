// Package hello is the sample's activity, the Go counterpart of the
// JavaScript sample's Hello/index.js. It has no function.json: the task hub
// runs activities itself, from its work-item queue, not the Functions host.
package hello

import (
	"context"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// Activity greets a city: "Tokyo" → "Hello Tokyo!".
var Activity = durable.NewActivity("Hello", func(ctx context.Context, city string) (string, error) {
	return "Hello " + city + "!", nil
})
