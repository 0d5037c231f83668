package funcapp

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWakeFunction: the wake function opts the app in to wake messages
// under the Functions host, only when it listens on the hub's wake queue in
// the hub's storage; a misfit names the function, its queue and the
// expected one.
func TestWakeFunction(t *testing.T) {
	queueFn := func(props string) string {
		return `{"bindings":[{"name":"msg","type":"queueTrigger","direction":"in",` + props + `}]}`
	}
	tests := []struct {
		name     string
		fn       string // function.json of DurableTaskWake; "" = none
		settings map[string]string
		hub      string
		hosted   bool
		wantOn   bool
		wantErr  []string
	}{
		{name: "no wake function", hosted: true},
		{name: "the sample's function under the host", fn: queueFn(`"queueName":"testhubname-wake","connection":"AzureWebJobsStorage"`), hosted: true, wantOn: true},
		{name: "standalone: nobody would receive wakes", fn: queueFn(`"queueName":"testhubname-wake"`)},
		{name: "standalone: not checked either", fn: queueFn(`"queueName":"elsewhere"`)},
		{name: "case does not matter, as for the host", fn: queueFn(`"queueName":"TestHubName-Wake","connection":"Storage"`), hosted: true, wantOn: true},
		{name: "a custom hub through a setting", fn: queueFn(`"queueName":"%WAKE_QUEUE%"`), hub: "Orders",
			settings: map[string]string{"WAKE_QUEUE": "orders-wake"}, hosted: true, wantOn: true},
		{name: "a setting inside the name", fn: queueFn(`"queueName":"%HUB%-wake"`), hub: "Orders",
			settings: map[string]string{"HUB": "orders"}, hosted: true, wantOn: true},
		{name: "another queue", fn: queueFn(`"queueName":"testhubname-wakeup"`), hosted: true,
			wantErr: []string{"function DurableTaskWake", `"testhubname-wakeup"`, `"testhubname-wake"`, "TestHubName"}},
		{name: "a setting resolving to another hub's queue", fn: queueFn(`"queueName":"%WAKE_QUEUE%"`), hub: "Orders",
			settings: map[string]string{"WAKE_QUEUE": "testhubname-wake"}, hosted: true,
			wantErr: []string{`"%WAKE_QUEUE%" (resolved to "testhubname-wake")`, `"orders-wake"`}},
		{name: "a missing setting", fn: queueFn(`"queueName":"%WAKE_QUEUE%"`), hosted: true,
			wantErr: []string{"WAKE_QUEUE, which is not set"}},
		{name: "another storage", fn: queueFn(`"queueName":"testhubname-wake","connection":"OtherStorage"`), hosted: true,
			wantErr: []string{`connection is "OtherStorage"`, "AzureWebJobsStorage"}},
		{name: "another trigger", fn: `{"bindings":[{"name":"t","type":"timerTrigger","direction":"in","schedule":"0 * * * * *"}]}`, hosted: true,
			wantErr: []string{`trigger is "timerTrigger"`, "queueTrigger"}},
		{name: "disabled in function.json: not checked, not used", fn: `{"disabled":true,"bindings":[{"name":"msg","type":"queueTrigger","direction":"in","queueName":"elsewhere"}]}`, hosted: true},
		{name: "disabled by app setting", fn: queueFn(`"queueName":"testhubname-wake"`), hosted: true,
			settings: map[string]string{"AzureWebJobs.DurableTaskWake.Disabled": "true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "host.json"), []byte(`{"version":"2.0"}`), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.fn != "" {
				dir := filepath.Join(root, WakeFunction)
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "function.json"), []byte(tt.fn), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			hub := tt.hub
			if hub == "" {
				hub = "TestHubName"
			}
			cfg := Config{AppRoot: root, Storage: developmentStorageShortcut, HubName: hub, Hosted: tt.hosted,
				Lookup: func(k string) string { return tt.settings[k] }}
			app, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if len(tt.wantErr) > 0 {
				if !errors.Is(err, ErrWakeFunction) {
					t.Fatalf("New = %v, want ErrWakeFunction", err)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %s", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if on := app.Wakes != nil; on != tt.wantOn {
				t.Errorf("wakes sent: %v, want %v", on, tt.wantOn)
			}
			if on := app.Watchdog != nil; on != tt.wantOn {
				t.Errorf("watchdog: %v, want %v (the same condition as wakes)", on, tt.wantOn)
			}
			if app.Watchdog != nil {
				// The engine's defaults: visibility 60 s, a third of it.
				if got := app.Watchdog.Refresh(); got != 20*time.Second {
					t.Errorf("watchdog refresh %v, want 20s", got)
				}
			}
		})
	}
}

func TestWatchdogRefresh(t *testing.T) {
	for _, tc := range []struct{ visibility, want time.Duration }{
		{time.Minute, 20 * time.Second},
		{2 * time.Second, time.Second},
		{5 * time.Second, 5 * time.Second / 3},
		{10 * time.Minute, 30 * time.Second},
	} {
		if got := watchdogRefresh(tc.visibility); got != tc.want {
			t.Errorf("watchdogRefresh(%v) = %v, want %v", tc.visibility, got, tc.want)
		}
	}
}

func TestWatchdogDelay(t *testing.T) {
	for _, tc := range []struct{ visibility, lease, want time.Duration }{
		{time.Minute, 30 * time.Second, 91 * time.Second}, // the defaults: visibility + lease + 1 s
		{12 * time.Second, time.Second, 18 * time.Second}, // a short lease: the last push may be 5 s old
	} {
		if got := watchdogDelay(tc.visibility, tc.lease, watchdogRefresh(tc.visibility)); got != tc.want {
			t.Errorf("watchdogDelay(%v, %v) = %v, want %v", tc.visibility, tc.lease, got, tc.want)
		}
	}
}
