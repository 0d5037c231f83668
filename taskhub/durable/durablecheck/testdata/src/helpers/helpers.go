package helpers

import (
	"os"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

var Greet = durable.NewOrchestrator("Greet", func(ctx *durable.Context, name string) (string, error) {
	return greeting(name) + stamp(), nil
})

var Again = durable.NewOrchestrator("Again", func(ctx *durable.Context, name string) (string, error) {
	return stamp() + suffix(ctx) + new(builder).build(), nil // stamp's findings were reported from Greet
})

func greeting(name string) string { return strings.ToUpper(name) + prefix() }

func prefix() string {
	return os.Getenv("PREFIX") // want `^os.Getenv in prefix, called from orchestrator "Greet" via "Greet" → greeting → prefix: the environment`
}

func stamp() string {
	return time.Now().String() + recurse(3) // want `^time.Now in stamp, called from orchestrator "Greet" via "Greet" → stamp:`
}

func recurse(n int) string {
	if n == 0 {
		return ""
	}
	time.Sleep(time.Millisecond) // want `time.Sleep in recurse, called from orchestrator "Greet" via "Greet" → stamp → recurse`
	return recurse(n - 1)
}

// suffix takes a *durable.Context, so it is checked as orchestrator code of
// its own (named after itself), not through the call from Again.
func suffix(ctx *durable.Context) string {
	return time.Now().Format(time.Kitchen) // want `^time.Now in suffix: `
}

type builder struct{}

func (b *builder) build() string {
	return os.Getenv("B") // want `os.Getenv in builder.build, called from orchestrator "Again" via "Again" → builder.build`
}

// Step is a method taking the context: orchestrator code too.
func (b *builder) Step(ctx *durable.Context) {
	time.Sleep(1) // want `^time.Sleep in builder.Step: `
}

// A function literal taking the context, not passed to NewOrchestrator.
var step = func(ctx *durable.Context) { time.Sleep(1) } // want `time.Sleep in a function literal taking a \*durable.Context`

// Code reached only through a function value, or outside orchestrators, is
// not followed.
func viaValue() string { return os.Getenv("V") }

var Values = durable.NewOrchestrator("Values", func(ctx *durable.Context, _ any) (string, error) {
	f := viaValue
	return f(), nil
})

func notOrchestrator() string { return time.Now().String() + prefix() }
