package funcapp

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/engine"
)

// TestLoadConfigVersioning checks the versioning settings: host.json's
// extensions.durableTask keys, the DURABLE_* overrides, the defaults, and
// errors that name the setting or the host.json key.
func TestLoadConfigVersioning(t *testing.T) {
	const storage = "UseDevelopmentStorage=true"
	hostWith := func(durableTask string) string {
		return `{"version":"2.0","extensions":{"http":{"routePrefix":"api"},"durableTask":` + durableTask + `}}`
	}
	tests := []struct {
		name      string
		host      string // "" = no host.json
		env       map[string]string
		version   string
		match     engine.VersionMatch
		failure   engine.VersionFailure
		wantErr   []string
		wantIsErr error
	}{
		{name: "no versioning anywhere", host: `{"version":"2.0"}`, match: engine.MatchNone, failure: engine.FailureReject},
		{name: "no host.json", match: engine.MatchNone},
		{name: "host.json default version: CurrentOrOlder and Reject by default",
			host: hostWith(`{"defaultVersion":"1.0"}`), version: "1.0", match: engine.MatchCurrentOrOlder, failure: engine.FailureReject},
		{name: "host.json strategies, any case",
			host:    hostWith(`{"defaultVersion":"2","versionMatchStrategy":"strict","versionFailureStrategy":"FAIL"}`),
			version: "2", match: engine.MatchStrict, failure: engine.FailureFail},
		{name: "environment overrides host.json",
			host:    hostWith(`{"defaultVersion":"1","versionMatchStrategy":"Strict","versionFailureStrategy":"Fail"}`),
			env:     map[string]string{SettingDefaultVersion: "3", SettingVersionMatch: "CurrentOrOlder", SettingVersionFailure: "Reject"},
			version: "3", match: engine.MatchCurrentOrOlder, failure: engine.FailureReject},
		{name: "environment alone", env: map[string]string{SettingDefaultVersion: "v7"}, version: "v7", match: engine.MatchCurrentOrOlder},
		{name: "an explicit None stays None", env: map[string]string{SettingDefaultVersion: "2", SettingVersionMatch: "None"},
			version: "2", match: engine.MatchNone},
		{name: "bad environment values name their settings",
			env:       map[string]string{SettingVersionMatch: "Newest", SettingVersionFailure: "Ignore"},
			wantErr:   []string{`setting DURABLE_VERSION_MATCH="Newest"`, "want None, Strict or CurrentOrOlder", `setting DURABLE_VERSION_FAILURE="Ignore"`, "want Reject or Fail"},
			wantIsErr: engine.ErrInvalidVersioning},
		{name: "a bad host.json value names the file and key",
			host:      hostWith(`{"versionMatchStrategy":"Older"}`),
			wantErr:   []string{`host.json: extensions.durableTask.versionMatchStrategy="Older"`},
			wantIsErr: engine.ErrInvalidVersioning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.host != "" {
				if err := os.WriteFile(filepath.Join(root, "host.json"), []byte(tt.host), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			env := map[string]string{"AzureWebJobsStorage": storage}
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := LoadConfig([]string{"-root", root}, func(k string) string { return env[k] }, io.Discard)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; config %+v", c)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				if !errors.Is(err, tt.wantIsErr) {
					t.Errorf("error %v is not %v", err, tt.wantIsErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.DefaultVersion != tt.version || c.VersionMatch != tt.match || c.VersionFailure != tt.failure {
				t.Errorf("version %q match %v failure %v; want %q %v %v", c.DefaultVersion, c.VersionMatch, c.VersionFailure, tt.version, tt.match, tt.failure)
			}
		})
	}
}
