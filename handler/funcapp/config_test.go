package funcapp

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	root := t.TempDir()
	local := `{"IsEncrypted":false,"Values":{"FUNCTIONS_WORKER_RUNTIME":"custom","AzureWebJobsStorage":"UseDevelopmentStorage=true","DURABLE_TASK_HUB":"FromFile"}}`
	if err := os.WriteFile(filepath.Join(root, "local.settings.json"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{
			name: "standalone reads local.settings.json, environment wins",
			args: []string{"-root", root},
			env:  map[string]string{"DURABLE_PARTITION_COUNT": "8", "DURABLE_MAX_POLL_INTERVAL": "250ms", "DURABLE_MIN_POLL_INTERVAL": "100ms"},
			check: func(t *testing.T, c Config) {
				if c.Storage != "UseDevelopmentStorage=true" || c.HubName != "FromFile" || c.PartitionCount != 8 ||
					c.MaxPollInterval != 250*time.Millisecond || c.MinPollInterval != 100*time.Millisecond || c.Addr != "127.0.0.1:7071" ||
					c.Hosted || c.Lookup("DURABLE_TASK_HUB") != "FromFile" || c.Lookup("DURABLE_PARTITION_COUNT") != "8" {
					t.Errorf("config %+v", c)
				}
			},
		},
		{
			name: "under the host only the environment counts",
			args: []string{"-root", root},
			env:  map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "5000", "AzureWebJobsStorage": "x=y"},
			check: func(t *testing.T, c Config) {
				if c.HubName != "TestHubName" || c.Storage != "x=y" || !c.Hosted || c.Lookup("DURABLE_TASK_HUB") != "" {
					t.Errorf("config %+v", c)
				}
			},
		},
		{
			name: "defaults: a 10 s stop grace, the unnamed app",
			args: []string{"-root", root},
			check: func(t *testing.T, c Config) {
				if c.StopGrace != 10*time.Second || c.AppName != "" {
					t.Errorf("StopGrace %v, AppName %q", c.StopGrace, c.AppName)
				}
			},
		},
		{
			name: "poison cap",
			args: []string{"-root", root},
			env:  map[string]string{"DURABLE_MAX_DEQUEUE_COUNT": "3"},
			check: func(t *testing.T, c Config) {
				if c.MaxDequeueCount != 3 {
					t.Errorf("MaxDequeueCount %d, want 3", c.MaxDequeueCount)
				}
			},
		},
		{
			name: "stop grace and app name",
			args: []string{"-root", root},
			env:  map[string]string{"DURABLE_STOP_GRACE": "3s", "DURABLE_APP_NAME": "orders", "WEBSITE_SITE_NAME": "site"},
			check: func(t *testing.T, c Config) {
				if c.StopGrace != 3*time.Second || c.AppName != "orders" {
					t.Errorf("StopGrace %v, AppName %q", c.StopGrace, c.AppName)
				}
			},
		},
		{
			name: "the app name falls back to WEBSITE_SITE_NAME, then DTFX_APP_NAME, as in Durable Task",
			args: []string{"-root", root},
			env:  map[string]string{"WEBSITE_SITE_NAME": "site", "DTFX_APP_NAME": "dtfx"},
			check: func(t *testing.T, c Config) {
				if c.AppName != "site" {
					t.Errorf("AppName %q, want site", c.AppName)
				}
			},
		},
		{
			name: "DTFX_APP_NAME last",
			args: []string{"-root", root},
			env:  map[string]string{"DTFX_APP_NAME": "dtfx"},
			check: func(t *testing.T, c Config) {
				if c.AppName != "dtfx" {
					t.Errorf("AppName %q, want dtfx", c.AppName)
				}
			},
		},
		{
			name: "coalescing budget",
			args: []string{"-root", root},
			env:  map[string]string{"DURABLE_COALESCE_BUDGET": "5ms"},
			check: func(t *testing.T, c Config) {
				if c.CoalesceBudget != 5*time.Millisecond {
					t.Errorf("CoalesceBudget %v, want 5ms", c.CoalesceBudget)
				}
			},
		},
		{
			name: "coalescing off",
			args: []string{"-root", root},
			env:  map[string]string{"DURABLE_COALESCE_BUDGET": "0"},
			check: func(t *testing.T, c Config) {
				if c.CoalesceBudget >= 0 {
					t.Errorf("CoalesceBudget %v, want negative (off)", c.CoalesceBudget)
				}
			},
		},
		{
			name:    "a bad coalescing budget is named",
			args:    []string{"-root", root},
			env:     map[string]string{"DURABLE_COALESCE_BUDGET": "soon"},
			wantErr: `DURABLE_COALESCE_BUDGET="soon"`,
		},
		{
			name: "durable HTTP poll interval",
			args: []string{"-root", root},
			env:  map[string]string{"DURABLE_HTTP_POLL_INTERVAL": "2s"},
			check: func(t *testing.T, c Config) {
				if c.HTTPPollInterval != 2*time.Second {
					t.Errorf("HTTPPollInterval %v, want 2s", c.HTTPPollInterval)
				}
			},
		},
		{
			name:    "a bad durable HTTP poll interval is named",
			args:    []string{"-root", root},
			env:     map[string]string{"DURABLE_HTTP_POLL_INTERVAL": "-1s"},
			wantErr: `DURABLE_HTTP_POLL_INTERVAL="-1s"`,
		},
		{
			name:    "a bad stop grace is named",
			args:    []string{"-root", root},
			env:     map[string]string{"DURABLE_STOP_GRACE": "ten"},
			wantErr: `DURABLE_STOP_GRACE="ten"`,
		},
		{
			name:    "a poison cap below one is refused",
			args:    []string{"-root", root},
			env:     map[string]string{"DURABLE_MAX_DEQUEUE_COUNT": "0"},
			wantErr: `DURABLE_MAX_DEQUEUE_COUNT="0": want a positive integer`,
		},
		{
			name:    "missing storage",
			args:    []string{"-root", t.TempDir()},
			wantErr: "AzureWebJobsStorage is empty",
		},
		{
			name:    "bad numbers and durations are named",
			args:    []string{"-root", root},
			env:     map[string]string{"DURABLE_PARTITION_COUNT": "four", "DURABLE_LEASE_INTERVAL": "-3s"},
			wantErr: "DURABLE_PARTITION_COUNT=\"four\"",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadConfig(tc.args, env(tc.env), io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
