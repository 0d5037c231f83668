// Package durablelib stands for a package of the programming model: its
// non-test files implement primitives and are not checked.
package durablelib

import "github.com/go-durable/durablefunctions/taskhub/durable"

// Race is library code that may use goroutines and channels.
func Race(ctx *durable.Context) int {
	ch := make(chan int, 1)
	go func() { ch <- 1 }()
	return <-ch
}
