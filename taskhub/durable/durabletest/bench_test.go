package durabletest_test

import (
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/durabletest"
)

// BenchmarkSequence runs 100 activities in sequence per run, with the
// determinism check (which runs the orchestrator twice more) and without.
func BenchmarkSequence(b *testing.B) {
	seq := durable.NewOrchestrator("Seq100", func(ctx *durable.Context, _ any) (int, error) {
		sum := 0
		for i := range 100 {
			v, err := double.Call(ctx, i).Await()
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	})
	for _, bc := range []struct {
		name string
		opts []durabletest.RunOption
	}{
		{"checked", nil},
		{"unchecked", []durabletest.RunOption{durabletest.SkipDeterminismCheck()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				res, err := durabletest.Run(ctx, durabletest.New(double), seq, nil, bc.opts...)
				if err != nil || res.Output != 9900 {
					b.Fatalf("output %v, err %v", res.Output, err)
				}
			}
		})
	}
}
