// Package handler is the Azure Functions custom-handler side of Durable
// Functions for Go: it reads an app root's host.json and function.json files,
// binds Go code to the declared functions, and serves them either to a
// Functions host (host mode, the custom-handler wire protocol) or directly
// (standalone mode, the same public routes without a host).
//
// Routes are declared once, in function.json; the route prefix comes from
// host.json's extensions.http.routePrefix ("api" by default).
//
// Typical use:
//
//	app, err := handler.New(handler.Options{AppRoot: "."})
//	...
//	err = app.HandleHTTP("Hello", func(ctx context.Context, req *handler.Request) *handler.Response {
//		return handler.JSON(http.StatusOK, map[string]string{"hello": req.Params["name"]})
//	})
//	...
//	err = app.Run(ctx, "127.0.0.1:7071") // host mode when FUNCTIONS_CUSTOMHANDLER_PORT is set
//
// Every error response the package produces itself has the ErrorBody shape
// {"error":{"code":"...","message":"..."}}.
package handler
