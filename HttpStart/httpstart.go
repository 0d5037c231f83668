// Package httpstart is the sample's client function, the Go counterpart of
// the JavaScript sample's HttpStart/index.js: POST
// /api/orchestrators/{functionName} starts that orchestrator with the
// request body as input and answers 202 with the check-status payload.
package httpstart

import (
	"context"
	"net/http"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/handler/durableapi"
	"github.com/go-durable/durablefunctions/taskhub/client"
)

// New returns the HttpStart function.
func New(c *client.Client, api *durableapi.API) handler.HTTPFunc {
	return func(ctx context.Context, req *handler.Request) *handler.Response {
		name := req.Params["functionName"]
		if name == "" {
			return handler.Error(http.StatusBadRequest, durableapi.CodeBadRequest, "the route needs an orchestrator name: /orchestrators/{functionName}")
		}
		id, err := c.StartNew(ctx, name, client.StartOptions{RawInput: string(req.Body)})
		if err != nil {
			return api.ClientError(err)
		}
		return api.CheckStatusResponse(req, id)
	}
}
