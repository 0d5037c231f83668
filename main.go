// Command durable-app is the sample function app: the classic Durable
// Functions "hello cities" sample written in Go. It is an Azure Functions
// custom handler (host.json starts it) and also runs on its own, serving the
// same URLs (go run . -addr 127.0.0.1:7071).
package main

import (
	counter "github.com/go-durable/durablefunctions/Counter"
	hello "github.com/go-durable/durablefunctions/Hello"
	httpstart "github.com/go-durable/durablefunctions/HttpStart"
	orchestrator "github.com/go-durable/durablefunctions/Orchestrator"
	"github.com/go-durable/durablefunctions/handler/funcapp"
)

func main() {
	funcapp.Main(func(app *funcapp.App) error {
		return app.Handler.HandleHTTP("HttpStart", httpstart.New(app.API))
	}, orchestrator.Orchestrator, hello.Activity, counter.Entity)
}
