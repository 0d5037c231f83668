package random

import (
	crand "crypto/rand"
	"math/rand"
	randv2 "math/rand/v2"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

var Dice = durable.NewOrchestrator("Dice", func(ctx *durable.Context, seed int64) (int, error) {
	a := rand.Intn(6)                  // want `math/rand.Intn in orchestrator "Dice": random values differ on every replay; use ctx.NewGUID\(\) for unique IDs, generate random values in an activity, or use rand.New with a seed`
	rand.Shuffle(3, func(i, j int) {}) // want `math/rand.Shuffle in orchestrator "Dice"`
	b := randv2.IntN(6)                // want `math/rand/v2.IntN in orchestrator "Dice"`
	buf := make([]byte, 16)
	_, _ = crand.Read(buf) // want `crypto/rand.Read in orchestrator "Dice": random bytes differ on every replay; use ctx.NewGUID\(\)`
	_ = crand.Text()       // want `crypto/rand.Text in orchestrator "Dice"`
	r := crand.Reader      // want `crypto/rand.Reader in orchestrator "Dice"`
	_ = r

	// A generator seeded from the input is deterministic; so is ctx.NewGUID.
	g := rand.New(rand.NewSource(seed))
	g2 := randv2.New(randv2.NewPCG(uint64(seed), 1))
	_ = ctx.NewGUID()
	return a + b + g.Intn(6) + g2.IntN(6), nil
})
