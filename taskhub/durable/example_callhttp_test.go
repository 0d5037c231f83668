package durable_test

import (
	"fmt"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// An orchestrator starts a job over HTTP, lets CallHTTP follow the job's
// 202 status URL with durable timers, and retries 500 and 503 answers.
func ExampleCallHTTP() {
	_ = durable.NewOrchestrator("StartJob", func(ctx *durable.Context, _ any) (string, error) {
		resp, err := durable.CallHTTP(ctx, durable.HTTPRequest{
			Method: "POST", URL: "https://api.example.com/jobs", Body: `{"n":1}`,
			Headers: durable.HTTPHeaders{"Content-Type": {"application/json"}},
			Timeout: 10 * time.Minute,
			Retry: &durable.HTTPRetryOptions{
				RetryPolicy:        durable.RetryPolicy{MaxAttempts: 3, FirstRetryInterval: 5 * time.Second},
				StatusCodesToRetry: []int{500, 503},
			},
			TokenSource: durable.ManagedIdentityToken("https://management.core.windows.net/"),
		}).Await()
		if err != nil {
			return "", err
		}
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("job: status %d: %s", resp.StatusCode, resp.Body)
		}
		return resp.Header("Content-Type") + " " + resp.Body, nil
	})
}
