// Package clean holds code the analyzer must leave alone.
package clean

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// Activities may do anything, also when defined inside an orchestrator.
var Fetch = durable.NewActivity("Fetch", func(ctx context.Context, url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	fmt.Println(time.Now(), rand.Intn(3), os.Getenv("X"))
	go func() {}()
	m := map[string]int{"a": 1}
	for k := range m {
		_ = k
	}
	return resp.Status, nil
})

var Orch = durable.NewOrchestrator("Orch", func(ctx *durable.Context, url string) (string, error) {
	inner := durable.NewActivity("Inner", func(ctx context.Context, _ any) (int64, error) {
		return time.Now().Unix(), nil
	})
	_ = inner
	at := ctx.CurrentTime()
	ctx.Logger().Info("fetching", "at", at)
	if err := ctx.Sleep(time.Minute); err != nil {
		return "", err
	}
	id := ctx.NewGUID()
	s, err := Fetch.Call(ctx, url+id).Await()
	for _, c := range []string{"a", "b"} {
		s += c
	}
	return s, err
})

// Ordinary code outside orchestrators is not checked.
func Handler(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, time.Now(), rand.Int(), os.Getenv("X"))
	ch := make(chan int, 1)
	go func() { ch <- 1 }()
	select {
	case <-ch:
	case <-time.After(time.Second):
	}
}

// A function taking a context.Context is not an orchestrator.
func Work(ctx context.Context) time.Time { return time.Now() }
