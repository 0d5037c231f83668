package replaytest_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/go-durable/durablefunctions/taskhub/durable"
	"github.com/go-durable/durablefunctions/taskhub/durable/replaytest"
)

// The export in testdata was saved from an instance of HelloCities that
// greeted Tokyo, Seattle and London with the Hello activity. Since then,
// the second call was changed to another activity: instances still running
// would break on replay.
func ExampleCheck() {
	greetActivity := durable.NewActivity("Greet", func(_ context.Context, city string) (string, error) {
		return "Hi " + city + "!", nil
	})
	helloCities := durable.NewOrchestrator("HelloCities", func(ctx *durable.Context, _ any) ([]string, error) {
		var out []string
		for _, city := range []string{"Tokyo", "Seattle", "London"} {
			activity := "Hello"
			if city == "Seattle" {
				activity = greetActivity.Name()
			}
			s, err := durable.CallActivity[string](ctx, activity, city).Await()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	})
	reg := durable.NewRegistry()
	if err := reg.Add(helloCities, greetActivity); err != nil {
		panic(err)
	}

	exported, err := os.ReadFile("testdata/hello_completed.json")
	if err != nil {
		panic(err)
	}
	err = replaytest.Check(reg, exported)

	var d *replaytest.DivergenceError
	if errors.As(err, &d) {
		fmt.Printf("%s at task %d (historyEvents[%d])\n", d.Kind, d.TaskID, d.Entry)
		fmt.Println("history:", d.Recorded)
		fmt.Println("code:   ", d.Produced)
	}
	// Output:
	// call mismatch at task 1 (historyEvents[2])
	// history: TaskScheduled "Hello" (task 1) with input "Seattle"
	// code:    TaskScheduled "Greet" (task 1) with input "Seattle"
}
