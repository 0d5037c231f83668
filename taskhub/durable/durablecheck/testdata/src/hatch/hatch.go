package hatch

import (
	"os"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

var Lines = durable.NewOrchestrator("Lines", func(ctx *durable.Context, _ any) (int, error) {
	a := time.Now() //durable:nondeterministic-ok measured for a log line only
	//durable:nondeterministic-ok
	b := time.Now()
	c := time.Now() //durable:nondeterministic-ok (a trailing directive covers only its own line)
	d := time.Now() // want `time.Now`
	e := time.Now() //durable:nondeterministic-okay is not the directive // want `time.Now`
	// durable:nondeterministic-ok with a space is not the directive either
	f := time.Now() // want `time.Now`
	return a.Second() + b.Second() + c.Second() + d.Second() + e.Second() + f.Second(), nil
})

// Whole is non-deterministic on purpose.
//
//durable:nondeterministic-ok a test orchestrator that must fail replay
func Whole(ctx *durable.Context, _ any) (int64, error) {
	go func() {}()
	step := func(ctx *durable.Context) { time.Sleep(1) } // a literal inside is silenced too
	step(ctx)
	return time.Now().Unix(), nil
}

var Lit = durable.NewOrchestrator("Lit", func(ctx *durable.Context, _ any) (int64, error) { //durable:nondeterministic-ok
	return time.Now().Unix(), nil
})

//durable:nondeterministic-ok the directive above the line where a literal starts
var Lit2 = durable.NewOrchestrator("Lit2", func(ctx *durable.Context, _ any) (int64, error) {
	return time.Now().Unix(), nil
})

var Calls = durable.NewOrchestrator("Calls", func(ctx *durable.Context, _ any) (string, error) {
	v := config()             //durable:nondeterministic-ok the call is not followed
	closure := func() int64 { //durable:nondeterministic-ok a closure is silenced whole
		return time.Now().Unix()
	}
	_ = closure
	return v + quiet() + loud(), nil
})

func config() string { return os.Getenv("X") }

// A test function (not orchestrator code) holding a silenced orchestrator.
//
//durable:nondeterministic-ok
func holder() {
	_ = durable.NewOrchestrator("Held", func(ctx *durable.Context, _ any) (int64, error) {
		return time.Now().Unix(), nil
	})
}

//durable:nondeterministic-ok a helper silenced whole
func quiet() string { return os.Getenv("Q") }

func loud() string {
	return os.Getenv("L") // want `os.Getenv in loud, called from orchestrator "Calls"`
}
