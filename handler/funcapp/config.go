package funcapp

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/handler"
	"github.com/go-durable/durablefunctions/taskhub/engine"
)

// App settings read from the environment (under the Functions host they are
// the app settings; locally they come from local.settings.json).
const (
	SettingStorage           = "AzureWebJobsStorage"
	SettingHubName           = "DURABLE_TASK_HUB"
	SettingPartitionCount    = "DURABLE_PARTITION_COUNT"
	SettingWorkerID          = "DURABLE_WORKER_ID"
	SettingMaxOrchestrations = "DURABLE_MAX_CONCURRENT_ORCHESTRATIONS"
	SettingMaxActivities     = "DURABLE_MAX_CONCURRENT_ACTIVITIES"
	SettingMaxPollInterval   = "DURABLE_MAX_POLL_INTERVAL"
	SettingMinPollInterval   = "DURABLE_MIN_POLL_INTERVAL"
	SettingMessageVisibility = "DURABLE_MESSAGE_VISIBILITY"
	SettingLeaseInterval     = "DURABLE_LEASE_INTERVAL"
	SettingStatusFlushDelay  = "DURABLE_STATUS_FLUSH_DELAY"
	SettingMaxDequeueCount   = "DURABLE_MAX_DEQUEUE_COUNT"
	SettingLogLevel          = "DURABLE_LOG_LEVEL"
	SettingFunctionKey       = "DURABLE_FUNCTION_KEY"
	SettingStopGrace         = "DURABLE_STOP_GRACE"
	SettingAppName           = "DURABLE_APP_NAME"
	SettingCoalesceBudget    = "DURABLE_COALESCE_BUDGET"
	// SettingHTTPPollInterval is the wait between polls of a 202 that
	// durable.CallHTTP follows when the response has no Retry-After
	// (Durable Functions' defaultHttpAsyncRequestSleepTimeMillseconds).
	SettingHTTPPollInterval = "DURABLE_HTTP_POLL_INTERVAL"
	// Orchestration versioning; each overrides the host.json key
	// extensions.durableTask.defaultVersion, versionMatchStrategy,
	// versionFailureStrategy.
	SettingDefaultVersion = "DURABLE_DEFAULT_VERSION"
	SettingVersionMatch   = "DURABLE_VERSION_MATCH"
	SettingVersionFailure = "DURABLE_VERSION_FAILURE"
	// Where Durable Task takes the app name from, in this order, when
	// DURABLE_APP_NAME is not set: apps that agree on it share a task hub.
	envSiteName                = "WEBSITE_SITE_NAME"
	envDTFxAppName             = "DTFX_APP_NAME"
	defaultStopGrace           = 10 * time.Second
	envCustomHandlerPort       = "FUNCTIONS_CUSTOMHANDLER_PORT"
	envAppRoot                 = "FUNCTIONS_APP_ROOT_PATH"
	defaultHubName             = "TestHubName"
	defaultStandaloneAddress   = "127.0.0.1:7071"
	localSettingsFile          = "local.settings.json"
	developmentStorageShortcut = "UseDevelopmentStorage=true"
)

// Config is the resolved configuration of the app.
type Config struct {
	AppRoot string
	Addr    string // standalone listen address
	Storage string // connection string; empty with StorageIdentity
	// StorageIdentity, when set, is an identity-based storage connection
	// (the AzureWebJobsStorage__* settings) instead of Storage.
	StorageIdentity   *StorageIdentity
	HubName           string
	PartitionCount    int
	WorkerID          string
	MaxOrchestrations int
	MaxActivities     int
	MaxPollInterval   time.Duration
	// MinPollInterval is the first polling backoff step after an empty
	// poll (engine default 50 ms).
	MinPollInterval   time.Duration
	MessageVisibility time.Duration
	LeaseInterval     time.Duration
	StatusFlushDelay  time.Duration
	MaxDequeueCount   int // tries of a failing message before it is parked as poison
	LogLevel          slog.Level
	FunctionKey       string // required by non-anonymous functions in standalone mode
	// StopGrace is how long a stop waits for in-flight work (activities,
	// episodes, HTTP requests) before interrupting it.
	StopGrace time.Duration
	// AppName names the app in the task hub's app lease: only workers of
	// one app name may process a hub.
	AppName string
	// CoalesceBudget is how long episodes waiting only on local activities
	// may share one history transaction; negative commits each episode on
	// its own ("0" in the setting), zero takes the engine's default.
	CoalesceBudget time.Duration
	// HTTPPollInterval is CallHTTP's default wait between polls (0 =
	// durable.DefaultHTTPPollInterval, 30 s).
	HTTPPollInterval time.Duration
	// DefaultVersion is the app's orchestration version: stamped on new
	// instances started without one, and what VersionMatch compares with.
	DefaultVersion string
	// VersionMatch says which instance versions this app runs: default
	// CurrentOrOlder when DefaultVersion is set, else None.
	VersionMatch engine.VersionMatch
	// VersionFailure says what happens to instances VersionMatch refuses:
	// default Reject.
	VersionFailure engine.VersionFailure
	// Hosted reports that the Functions host runs the app
	// (FUNCTIONS_CUSTOMHANDLER_PORT is set), as opposed to standalone.
	Hosted bool
	// Lookup reads an app setting as LoadConfig did: the environment, and
	// in standalone mode local.settings.json. Nil reads the environment.
	Lookup func(string) string
}

// LoadConfig parses flags (-addr, -root) and settings. getenv reads the
// environment; in standalone mode (no FUNCTIONS_CUSTOMHANDLER_PORT) values
// missing from the environment are taken from local.settings.json, as
// `func start` would.
func LoadConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("durable-app", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", defaultStandaloneAddress, "listen address in standalone mode (without the Functions host)")
	root := fs.String("root", "", "function app root (default: $FUNCTIONS_APP_ROOT_PATH, else the working directory)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	cfg := Config{Addr: *addr, AppRoot: *root}
	if cfg.AppRoot == "" {
		cfg.AppRoot = getenv(envAppRoot)
	}
	if cfg.AppRoot == "" {
		wd, err := os.Getwd()
		if err != nil {
			return Config{}, fmt.Errorf("find the app root: %w", err)
		}
		cfg.AppRoot = wd
	}
	get := getenv
	cfg.Hosted = getenv(envCustomHandlerPort) != ""
	if !cfg.Hosted {
		local, err := readLocalSettings(filepath.Join(cfg.AppRoot, localSettingsFile))
		if err != nil {
			return Config{}, err
		}
		get = func(k string) string {
			if v := getenv(k); v != "" {
				return v
			}
			return local[k]
		}
	}
	cfg.Lookup = get
	if err := cfg.loadStorage(get); err != nil {
		return Config{}, err
	}
	cfg.HubName = get(SettingHubName)
	if cfg.HubName == "" {
		cfg.HubName = defaultHubName
	}
	cfg.WorkerID = get(SettingWorkerID)
	cfg.FunctionKey = get(SettingFunctionKey)
	for _, k := range []string{SettingAppName, envSiteName, envDTFxAppName} {
		if v := get(k); v != "" {
			cfg.AppName = v
			break
		}
	}
	cfg.StopGrace = defaultStopGrace
	var errs []error
	intSetting := func(name string, dst *int) {
		if v := get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("setting %s=%q: want a positive integer", name, v))
				return
			}
			*dst = n
		}
	}
	durSetting := func(name string, dst *time.Duration) {
		if v := get(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("setting %s=%q: want a positive duration such as 500ms or 2s", name, v))
				return
			}
			*dst = d
		}
	}
	intSetting(SettingPartitionCount, &cfg.PartitionCount)
	intSetting(SettingMaxOrchestrations, &cfg.MaxOrchestrations)
	intSetting(SettingMaxActivities, &cfg.MaxActivities)
	intSetting(SettingMaxDequeueCount, &cfg.MaxDequeueCount)
	durSetting(SettingMaxPollInterval, &cfg.MaxPollInterval)
	durSetting(SettingMinPollInterval, &cfg.MinPollInterval)
	durSetting(SettingMessageVisibility, &cfg.MessageVisibility)
	durSetting(SettingLeaseInterval, &cfg.LeaseInterval)
	durSetting(SettingStatusFlushDelay, &cfg.StatusFlushDelay)
	durSetting(SettingStopGrace, &cfg.StopGrace)
	durSetting(SettingHTTPPollInterval, &cfg.HTTPPollInterval)
	if v := get(SettingCoalesceBudget); v != "" {
		d, err := time.ParseDuration(v)
		switch {
		case v == "0":
			cfg.CoalesceBudget = -1
		case err != nil || d <= 0:
			errs = append(errs, fmt.Errorf("setting %s=%q: want a duration such as 20ms, or 0 to commit every episode on its own", SettingCoalesceBudget, v))
		default:
			cfg.CoalesceBudget = d
		}
	}
	if err := cfg.loadVersioning(get); err != nil {
		errs = append(errs, err)
	}
	if v := get(SettingLogLevel); v != "" {
		if err := cfg.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("setting %s=%q: want debug, info, warn or error", SettingLogLevel, v))
		}
	}
	return cfg, errors.Join(errs...)
}

// loadVersioning resolves the orchestration versioning settings: each
// setting in the environment overrides its host.json key
// (extensions.durableTask). Durable Functions' default match strategy is
// CurrentOrOlder; without a default version that would refuse every
// instance started with an explicit version, so versioning then stays off
// (None) unless a strategy is set.
func (cfg *Config) loadVersioning(get func(string) string) error {
	var host handler.DurableTaskSettings
	hostFile := filepath.Join(cfg.AppRoot, "host.json")
	if _, err := os.Stat(hostFile); err == nil {
		// A host.json that cannot be read is reported by the handler, with
		// the rest of the app's configuration; only its values matter here.
		if hc, err := handler.ReadHostJSON(cfg.AppRoot); err == nil {
			host = hc.DurableTask
		}
	}
	pick := func(setting string, key *string, name string) (string, string, bool) {
		if v := get(setting); v != "" {
			return v, "setting " + setting, true
		}
		if key != nil {
			return *key, hostFile + ": extensions.durableTask." + name, true
		}
		return "", "", false
	}
	var errs []error
	if v, _, ok := pick(SettingDefaultVersion, host.DefaultVersion, "defaultVersion"); ok {
		cfg.DefaultVersion = v
	}
	cfg.VersionMatch = engine.MatchNone
	if cfg.DefaultVersion != "" {
		cfg.VersionMatch = engine.MatchCurrentOrOlder
	}
	if v, where, ok := pick(SettingVersionMatch, host.VersionMatchStrategy, "versionMatchStrategy"); ok {
		m, err := engine.ParseVersionMatch(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", where, v, err))
		}
		cfg.VersionMatch = m
	}
	if v, where, ok := pick(SettingVersionFailure, host.VersionFailureStrategy, "versionFailureStrategy"); ok {
		f, err := engine.ParseVersionFailure(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", where, v, err))
		}
		cfg.VersionFailure = f
	}
	return errors.Join(errs...)
}

// readLocalSettings returns the Values of local.settings.json (none if the
// file does not exist).
func readLocalSettings(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var f struct {
		Values map[string]string `json:"Values"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(string(b), "\ufeff")), &f); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", path, err)
	}
	if f.Values == nil {
		f.Values = map[string]string{}
	}
	return f.Values, nil
}
