package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultRoutePrefix is the route prefix used when host.json does not set
// extensions.http.routePrefix.
const DefaultRoutePrefix = "api"

// AppConfig is what an app root declares: host.json settings and every
// function folder's function.json.
type AppConfig struct {
	// Root is the absolute app root directory.
	Root string
	// RoutePrefix is extensions.http.routePrefix without slashes ("" means
	// no prefix).
	RoutePrefix string
	// CustomHandler is host.json's customHandler section (or the legacy
	// httpWorker section when customHandler is absent).
	CustomHandler CustomHandlerConfig
	// FunctionTimeout is host.json's functionTimeout; 0 when absent, negative
	// when "-1" (unbounded).
	FunctionTimeout time.Duration
	// Functions lists the functions sorted by name.
	Functions []FunctionInfo
	// DurableTask is what host.json's extensions.durableTask says of
	// orchestration versioning (handler/funcapp validates it).
	DurableTask DurableTaskSettings
}

// DurableTaskSettings are the extensions.durableTask settings of host.json
// that this app reads, as written (nil when absent).
type DurableTaskSettings struct {
	DefaultVersion         *string // defaultVersion
	VersionMatchStrategy   *string // versionMatchStrategy
	VersionFailureStrategy *string // versionFailureStrategy
}

// CustomHandlerConfig is host.json's customHandler section.
type CustomHandlerConfig struct {
	// Legacy is true when the section was read from the deprecated
	// "httpWorker" key.
	Legacy bool
	// Description says how the host starts the handler process.
	Description CustomHandlerDescription
	// EnableForwardingHTTPRequest is enableForwardingHttpRequest.
	EnableForwardingHTTPRequest bool
	// EnableProxyingHTTPRequest is enableProxyingHttpRequest.
	EnableProxyingHTTPRequest bool
	// Port is the fixed handler port; 0 means a free port chosen by the host.
	Port int
	// InitializationTimeout is initializationTimeout; 0 when absent.
	InitializationTimeout time.Duration
}

// CustomHandlerDescription is customHandler.description.
type CustomHandlerDescription struct {
	// DefaultExecutablePath is the program the host starts.
	DefaultExecutablePath string
	// Arguments are appended to the command line (%VAR% tokens expanded).
	Arguments []string
	// WorkingDirectory is the child's working directory (relative to the
	// app root; empty means the app root).
	WorkingDirectory string
	// DefaultWorkerPath is the legacy worker script path, quoted after
	// Arguments.
	DefaultWorkerPath string
	// WorkerArguments are legacy arguments after DefaultWorkerPath.
	WorkerArguments []string
	// WorkerDirectory is where a relative DefaultExecutablePath is looked
	// for (empty means the app root).
	WorkerDirectory string
}

// FunctionInfo describes one function folder.
type FunctionInfo struct {
	// Name is the folder name (case preserved).
	Name string
	// Dir is the absolute folder path.
	Dir string
	// TriggerType is the trigger binding's type as written, e.g. "httpTrigger".
	TriggerType string
	// TriggerName is the trigger binding's name, e.g. "req".
	TriggerName string
	// Route is the effective route template of an httpTrigger function
	// (the function name when function.json has none), without slashes.
	Route string
	// Methods are the allowed HTTP methods in upper case; empty means all.
	Methods []string
	// AuthLevel is the httpTrigger authLevel in lower case ("function" when
	// omitted). It is recorded, not enforced.
	AuthLevel string
	// HTTPOutput is the name of the "http" output binding ("res", "$return"),
	// empty when there is none.
	HTTPOutput string
	// Disabled is function.json's "disabled" flag.
	Disabled bool
	// Bindings are all bindings in declaration order.
	Bindings []Binding

	template *RouteTemplate
}

// Binding is one entry of function.json's bindings array.
type Binding struct {
	// Type is the binding type as written, e.g. "httpTrigger", "queue".
	Type string
	// Direction is "in", "out" or "inout" as written.
	Direction string
	// Name is the binding name ("req", "res", "$return").
	Name string
	// DataType is the optional dataType ("binary", "string", "stream").
	DataType string
	// Properties holds every property as written, including the ones above,
	// for trigger-specific settings (queueName, schedule, connection...).
	Properties map[string]json.RawMessage
}

// IsHTTP reports whether the function has an httpTrigger.
func (f FunctionInfo) IsHTTP() bool { return strings.EqualFold(f.TriggerType, "httpTrigger") }

// RouteTemplate returns the parsed route template of an httpTrigger function
// (nil for other functions).
func (f FunctionInfo) RouteTemplate() *RouteTemplate { return f.template }

// IsHTTPOnly reports whether the function has exactly one input binding, an
// httpTrigger, and exactly one output binding, of type http: the functions
// the host forwards or proxies when host.json enables it.
func (f FunctionInfo) IsHTTPOnly() bool {
	var in, out int
	for _, b := range f.Bindings {
		switch strings.ToLower(b.Direction) {
		case "in":
			in++
		case "out":
			out++
		case "inout":
			in++
			out++
		}
	}
	return f.IsHTTP() && f.HTTPOutput != "" && in == 1 && out == 1
}

// OutputBinding returns the output binding with the given name (matched
// case-sensitively, as the host does for Outputs keys).
func (f FunctionInfo) OutputBinding(name string) (Binding, bool) {
	for _, b := range f.Bindings {
		if b.Name == name && !strings.EqualFold(b.Direction, "in") {
			return b, true
		}
	}
	return Binding{}, false
}

// LoadAppConfig reads root/host.json and every root/<dir>/function.json
// (one level deep; the folder name is the function name). Every problem
// found is reported, each naming its file.
func LoadAppConfig(root string) (*AppConfig, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("app root %q: %w", root, err)
	}
	cfg := &AppConfig{Root: abs}
	if err := cfg.readHostJSON(filepath.Join(abs, "host.json")); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, fmt.Errorf("read app root: %w", err)
	}
	var errs []error
	byName := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(abs, e.Name(), "function.json")
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", path, err))
			continue
		}
		fn, err := parseFunctionJSON(e.Name(), filepath.Dir(path), data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if other, dup := byName[strings.ToLower(fn.Name)]; dup {
			errs = append(errs, fmt.Errorf("%s: function name %q is not unique (also %q); names are case-insensitive", path, fn.Name, other))
			continue
		}
		byName[strings.ToLower(fn.Name)] = fn.Name
		cfg.Functions = append(cfg.Functions, fn)
	}
	errs = append(errs, routeConflicts(cfg.Functions)...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("app root %s: %w", abs, errors.Join(errs...))
	}
	slices.SortFunc(cfg.Functions, func(a, b FunctionInfo) int { return strings.Compare(a.Name, b.Name) })
	return cfg, nil
}

// ReadHostJSON reads root/host.json alone (no function folders): its
// settings in an AppConfig without Functions.
func ReadHostJSON(root string) (*AppConfig, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("app root %q: %w", root, err)
	}
	cfg := &AppConfig{Root: abs}
	if err := cfg.readHostJSON(filepath.Join(abs, "host.json")); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Function returns the function with the given name, matched exactly first
// and then case-insensitively.
func (c *AppConfig) Function(name string) (FunctionInfo, bool) {
	for _, f := range c.Functions {
		if f.Name == name {
			return f, true
		}
	}
	for _, f := range c.Functions {
		if strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return FunctionInfo{}, false
}

type hostJSON struct {
	FunctionTimeout *string `json:"functionTimeout"`
	Extensions      struct {
		HTTP struct {
			RoutePrefix *string `json:"routePrefix"`
		} `json:"http"`
		DurableTask struct {
			DefaultVersion         *string `json:"defaultVersion"`
			VersionMatchStrategy   *string `json:"versionMatchStrategy"`
			VersionFailureStrategy *string `json:"versionFailureStrategy"`
		} `json:"durableTask"`
	} `json:"extensions"`
	CustomHandler *customHandlerJSON `json:"customHandler"`
	HTTPWorker    *customHandlerJSON `json:"httpWorker"`
}

type customHandlerJSON struct {
	Description struct {
		DefaultExecutablePath string   `json:"defaultExecutablePath"`
		Arguments             []string `json:"arguments"`
		WorkingDirectory      string   `json:"workingDirectory"`
		DefaultWorkerPath     string   `json:"defaultWorkerPath"`
		WorkerArguments       []string `json:"workerArguments"`
		WorkerDirectory       string   `json:"workerDirectory"`
	} `json:"description"`
	EnableForwardingHTTPRequest bool    `json:"enableForwardingHttpRequest"`
	EnableProxyingHTTPRequest   bool    `json:"enableProxyingHttpRequest"`
	Port                        int     `json:"port"`
	InitializationTimeout       *string `json:"initializationTimeout"`
}

func (c *AppConfig) readHostJSON(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read host.json: %w", err)
	}
	var h hostJSON
	if err := json.Unmarshal(stripBOM(data), &h); err != nil {
		return fmt.Errorf("%s: malformed JSON: %w", path, err)
	}
	dt := h.Extensions.DurableTask
	c.DurableTask = DurableTaskSettings{DefaultVersion: dt.DefaultVersion,
		VersionMatchStrategy: dt.VersionMatchStrategy, VersionFailureStrategy: dt.VersionFailureStrategy}
	c.RoutePrefix = DefaultRoutePrefix
	if h.Extensions.HTTP.RoutePrefix != nil {
		c.RoutePrefix = strings.Trim(*h.Extensions.HTTP.RoutePrefix, "/")
	}
	if h.FunctionTimeout != nil {
		d, err := ParseTimeSpan(*h.FunctionTimeout)
		if err != nil {
			return fmt.Errorf("%s: functionTimeout: %w", path, err)
		}
		c.FunctionTimeout = d
	}
	ch := h.CustomHandler
	if ch == nil && h.HTTPWorker != nil {
		ch, c.CustomHandler.Legacy = h.HTTPWorker, true
	}
	if ch != nil {
		d := ch.Description
		c.CustomHandler.Description = CustomHandlerDescription{
			DefaultExecutablePath: d.DefaultExecutablePath,
			Arguments:             d.Arguments,
			WorkingDirectory:      d.WorkingDirectory,
			DefaultWorkerPath:     d.DefaultWorkerPath,
			WorkerArguments:       d.WorkerArguments,
			WorkerDirectory:       d.WorkerDirectory,
		}
		c.CustomHandler.EnableForwardingHTTPRequest = ch.EnableForwardingHTTPRequest
		c.CustomHandler.EnableProxyingHTTPRequest = ch.EnableProxyingHTTPRequest
		c.CustomHandler.Port = ch.Port
		if ch.InitializationTimeout != nil {
			t, err := ParseTimeSpan(*ch.InitializationTimeout)
			if err != nil {
				return fmt.Errorf("%s: customHandler.initializationTimeout: %w", path, err)
			}
			c.CustomHandler.InitializationTimeout = t
		}
	}
	return nil
}

// ParseTimeSpan parses a .NET TimeSpan as host.json writes it: "hh:mm:ss",
// "d.hh:mm:ss", optionally with fractional seconds. "-1" means unbounded
// and is returned as -1ns.
func ParseTimeSpan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "-1" {
		return -1, nil
	}
	bad := fmt.Errorf("invalid time span %q (want hh:mm:ss or d.hh:mm:ss)", s)
	days := 0
	rest := s
	if dot, colon := strings.Index(rest, "."), strings.Index(rest, ":"); dot >= 0 && dot < colon {
		d, err := strconv.Atoi(rest[:dot])
		if err != nil || d < 0 {
			return 0, bad
		}
		days, rest = d, rest[dot+1:]
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 {
		return 0, bad
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || h > 23 && days > 0 || m < 0 || m > 59 || sec < 0 || sec >= 60 {
		return 0, bad
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(sec*float64(time.Second))
	return d, nil
}

func stripBOM(b []byte) []byte { return bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) }

type functionJSON struct {
	Disabled json.RawMessage   `json:"disabled"`
	Bindings []json.RawMessage `json:"bindings"`
}

var validAuthLevels = []string{"anonymous", "function", "admin", "user", "system"}

func parseFunctionJSON(name, dir string, data []byte) (FunctionInfo, error) {
	var fj functionJSON
	if err := json.Unmarshal(stripBOM(data), &fj); err != nil {
		return FunctionInfo{}, fmt.Errorf("malformed JSON: %w", err)
	}
	fn := FunctionInfo{Name: name, Dir: dir}
	switch d := strings.Trim(strings.ToLower(string(fj.Disabled)), `"`); d {
	case "", "false", "null":
	case "true":
		fn.Disabled = true
	default:
		return FunctionInfo{}, fmt.Errorf(`"disabled" must be true or false, not %s`, fj.Disabled)
	}
	if len(fj.Bindings) == 0 {
		return FunctionInfo{}, errors.New(`no "bindings"`)
	}
	var trigger map[string]json.RawMessage
	for i, raw := range fj.Bindings {
		b, err := parseBinding(raw)
		if err != nil {
			return FunctionInfo{}, fmt.Errorf("binding %d: %w", i, err)
		}
		fn.Bindings = append(fn.Bindings, b)
		isTrigger := strings.HasSuffix(strings.ToLower(b.Type), "trigger")
		if isTrigger {
			if !strings.EqualFold(b.Direction, "in") {
				return FunctionInfo{}, fmt.Errorf("binding %d: trigger %q must have direction \"in\"", i, b.Name)
			}
			if fn.TriggerType != "" {
				return FunctionInfo{}, fmt.Errorf("more than one trigger binding (%q and %q)", fn.TriggerName, b.Name)
			}
			fn.TriggerType, fn.TriggerName, trigger = b.Type, b.Name, b.Properties
		}
		if strings.EqualFold(b.Type, "http") && strings.EqualFold(b.Direction, "out") {
			if fn.HTTPOutput != "" {
				return FunctionInfo{}, fmt.Errorf("more than one http output binding (%q and %q)", fn.HTTPOutput, b.Name)
			}
			fn.HTTPOutput = b.Name
		}
	}
	if fn.TriggerType == "" {
		return FunctionInfo{}, errors.New("no trigger binding (a binding whose type ends in \"Trigger\")")
	}
	if fn.IsHTTP() {
		if err := fn.readHTTPTrigger(trigger); err != nil {
			return FunctionInfo{}, fmt.Errorf("httpTrigger %q: %w", fn.TriggerName, err)
		}
	}
	return fn, nil
}

func parseBinding(raw json.RawMessage) (Binding, error) {
	var props map[string]json.RawMessage
	if err := json.Unmarshal(raw, &props); err != nil {
		return Binding{}, fmt.Errorf("not a JSON object: %w", err)
	}
	b := Binding{Properties: props}
	for _, f := range []struct {
		key      string
		dst      *string
		required bool
	}{{"type", &b.Type, true}, {"direction", &b.Direction, true}, {"name", &b.Name, true}, {"dataType", &b.DataType, false}} {
		v, ok := lookupFold(props, f.key)
		if !ok || string(v) == "null" {
			if f.required {
				return Binding{}, fmt.Errorf("missing %q", f.key)
			}
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			return Binding{}, fmt.Errorf("%q must be a string: %w", f.key, err)
		}
		if f.required && strings.TrimSpace(*f.dst) == "" {
			return Binding{}, fmt.Errorf("empty %q", f.key)
		}
	}
	switch strings.ToLower(b.Direction) {
	case "in", "out", "inout":
	default:
		return Binding{}, fmt.Errorf("binding %q: direction %q is not in, out or inout", b.Name, b.Direction)
	}
	return b, nil
}

func (fn *FunctionInfo) readHTTPTrigger(props map[string]json.RawMessage) error {
	if v, ok := lookupFold(props, "route"); ok && string(v) != "null" {
		if err := json.Unmarshal(v, &fn.Route); err != nil {
			return fmt.Errorf(`"route" must be a string: %w`, err)
		}
	}
	fn.Route = strings.Trim(strings.TrimSpace(fn.Route), "/")
	if fn.Route == "" {
		fn.Route = fn.Name
	}
	lower := strings.ToLower(fn.Route)
	if strings.HasPrefix(lower, "admin") || strings.HasPrefix(lower, "runtime") {
		return fmt.Errorf("route %q conflicts with the host's built-in routes (routes may not start with \"admin\" or \"runtime\")", fn.Route)
	}
	t, err := ParseRouteTemplate(fn.Route)
	if err != nil {
		return err
	}
	fn.template = t
	if v, ok := lookupFold(props, "methods"); ok && string(v) != "null" {
		var methods []string
		if err := json.Unmarshal(v, &methods); err != nil {
			return fmt.Errorf(`"methods" must be an array of strings: %w`, err)
		}
		for _, m := range methods {
			m = strings.ToUpper(strings.TrimSpace(m))
			if m == "" || strings.ContainsAny(m, " \t/(),;:\"<>?@[]\\{}=") {
				return fmt.Errorf("invalid HTTP method %q", m)
			}
			if !slices.Contains(fn.Methods, m) {
				fn.Methods = append(fn.Methods, m)
			}
		}
	}
	fn.AuthLevel = "function"
	if v, ok := lookupFold(props, "authLevel"); ok && string(v) != "null" {
		if err := json.Unmarshal(v, &fn.AuthLevel); err != nil {
			return fmt.Errorf(`"authLevel" must be a string: %w`, err)
		}
		fn.AuthLevel = strings.ToLower(fn.AuthLevel)
		if !slices.Contains(validAuthLevels, fn.AuthLevel) {
			return fmt.Errorf("authLevel %q is not one of %s", fn.AuthLevel, strings.Join(validAuthLevels, ", "))
		}
	}
	return nil
}

// routeConflicts reports httpTrigger functions with the same route template
// (compared case-insensitively, like the host) and intersecting methods.
func routeConflicts(fns []FunctionInfo) []error {
	var errs []error
	for i, a := range fns {
		for _, b := range fns[i+1:] {
			if !a.IsHTTP() || !b.IsHTTP() || !strings.EqualFold(a.Route, b.Route) {
				continue
			}
			if len(a.Methods) == 0 || len(b.Methods) == 0 || slices.ContainsFunc(a.Methods, func(m string) bool { return slices.Contains(b.Methods, m) }) {
				errs = append(errs, fmt.Errorf("%s: route %q conflicts with the route of function %q", filepath.Join(b.Dir, "function.json"), b.Route, a.Name))
			}
		}
	}
	return errs
}

// lookupFold finds key in m, exactly first, then case-insensitively.
func lookupFold(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// ResolveSettings replaces every %NAME% in s with the app setting NAME
// (lookup returns "" for one that is not set), as the Functions host
// resolves the binding expressions of function.json (a queueTrigger's
// queueName, say). A setting that is not set, or a % without its closing
// one, is an error naming it.
func ResolveSettings(s string, lookup func(string) string) (string, error) {
	var out strings.Builder
	for {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			out.WriteString(s)
			return out.String(), nil
		}
		j := strings.IndexByte(s[i+1:], '%')
		if j < 0 {
			return "", fmt.Errorf("%q has a %% without its closing %%", s)
		}
		name := s[i+1 : i+1+j]
		v := lookup(name)
		if v == "" {
			return "", fmt.Errorf("names app setting %s, which is not set", name)
		}
		out.WriteString(s[:i])
		out.WriteString(v)
		s = s[i+2+j:]
	}
}
