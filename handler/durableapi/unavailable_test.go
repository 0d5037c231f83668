package durableapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

func TestUnavailableIs503WithRetryAfter(t *testing.T) {
	api := New(nil, Options{})
	cause := errors.New("dial tcp 127.0.0.1:10002: connection refused")
	for _, tc := range []struct {
		name       string
		err        error
		retryAfter string
	}{
		{"retrying, due in 2.5 s", &backend.UnavailableError{Hub: "Hub1", Reason: "starting, attempt 3 failed", RetryAfter: 2500 * time.Millisecond, Cause: cause}, "3"},
		{"no delay known", &backend.UnavailableError{Hub: "Hub1", Reason: "starting"}, "1"},
		{"wrapped by the client", fmt.Errorf("client: read instance %q: %w", "x", &backend.UnavailableError{Hub: "Hub1", Reason: "the engine has stopped"}), "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := api.ClientError(tc.err)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != tc.retryAfter {
				t.Fatalf("status %d Retry-After %q, want 503 and %s", resp.StatusCode, resp.Header.Get("Retry-After"), tc.retryAfter)
			}
			var body struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(resp.Body, &body); err != nil {
				t.Fatal(err)
			}
			if body.Error.Code != CodeUnavailable || body.Error.Message != tc.err.Error() {
				t.Fatalf("error %+v, want code %s and the reason %q", body.Error, CodeUnavailable, tc.err)
			}
		})
	}
}
