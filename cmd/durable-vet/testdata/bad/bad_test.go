package bad

import "github.com/go-durable/durablefunctions/taskhub/durable"

// go vet checks test files too.
var fan = durable.NewOrchestrator("Fan", func(ctx *durable.Context, _ any) (int, error) {
	ch := make(chan int)
	go func() { ch <- 1 }()
	return 0, nil
})
