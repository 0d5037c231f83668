package maps

import (
	"maps"
	"slices"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

var Cities = durable.NewOrchestrator("Cities", func(ctx *durable.Context, in map[string]int) ([]string, error) {
	var tasks []durable.Awaitable
	for city := range in { // want `^range over a map in orchestrator "Cities": Go randomizes map iteration order, .*slices.Sorted\(maps.Keys\(m\)\)`
		tasks = append(tasks, durable.CallActivity[string](ctx, "Hello", city))
	}
	var out []string
	for _, n := range in { // want `range over a map`
		if n > 2 {
			out = append(out, "big")
		}
	}
	for k := range maps.Keys(in) { // want `^range over maps.Keys in orchestrator "Cities"`
		out = append(out, k)
	}
	for k, v := range maps.All(in) { // want `range over maps.All`
		_, _ = k, v
	}
	type byName map[string]bool
	for k := range (byName{}) { // want `range over a map`
		_ = k
	}

	// Counting needs no order; sorted keys and slices are ordered.
	count := 0
	for range in {
		count++
	}
	for _ = range in {
		count++
	}
	for _, k := range slices.Sorted(maps.Keys(in)) {
		out = append(out, k)
	}
	return out, durable.WhenAll(ctx, tasks...)
})

var Copy = durable.NewOrchestrator("Copy", func(ctx *durable.Context, in map[string]int) (map[string]int, error) {
	// Copying, filtering or inverting a map gives the same map in any order.
	out := map[string]int{}
	inv := map[int]string{}
	for k, v := range in {
		out[k] = v * 2
		inv[v] = string([]byte(k))
	}
	for k := range in {
		delete(out, k+"x")
	}
	// A call, an append or anything else in the body may depend on the order.
	tasks := map[string]*durable.Task[string]{}
	for k := range in { // want `range over a map in orchestrator "Copy"`
		tasks[k] = durable.CallActivity[string](ctx, "Hello", k)
	}
	var keys []string
	for k := range in { // want `range over a map`
		out[k] = 1
		keys = append(keys, k)
	}
	for k, v := range in { // want `range over a map`
		out[k] += v
	}
	return out, nil
})
