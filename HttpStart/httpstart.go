// Package httpstart is the sample's client function, the Go counterpart of
// the JavaScript sample's HttpStart/index.js: POST
// /api/orchestrators/{functionName} starts that orchestrator with the
// request body as input and answers 202 with the check-status payload.
// The work is the library's generic starter, durableapi.API.HandleStart;
// function.json gives the route.
package httpstart

import (
	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/handler/durableapi"
)

// New returns the HttpStart function.
func New(api *durableapi.API) handler.HTTPFunc { return api.HandleStart }
