// Package hostemulator stands in for the Azure Functions host (func start) in
// tests: it starts a built custom-handler binary exactly the way the host
// does, supervises it with the host's restart policy, and exposes the public
// HTTP surface (/{routePrefix}/{route}) by sending the host's invocation
// requests to the handler and checking its replies strictly.
//
// It follows the wire contract in the project's custom-handler reference
// (section 10 checklist): process launch and environment, readiness polling,
// restarts, stdout/stderr capture, the default-mode invocation payloads for
// httpTrigger, queueTrigger and timerTrigger functions, the value encoding
// quirks, the strict reply checks, http output interpretation, the base64
// output quirk, forwarding mode and the function timeout.
//
// Where the real host would misbehave silently (a reply it would wait on
// forever, an output it would base64-decode, an output name it would ignore)
// the emulator records an InvocationError instead, so tests can assert that
// InvocationErrors is empty.
package hostemulator
