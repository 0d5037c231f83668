package handler

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadAppConfig(t *testing.T) {
	root := writeApp(t, `{"version":"2.0","functionTimeout":"00:10:00",
		"extensions":{"http":{"routePrefix":"/v1/"}},
		"customHandler":{"description":{"defaultExecutablePath":"handler","arguments":["-x","%A%"],"workingDirectory":"wd"},
		"enableForwardingHttpRequest":true,"initializationTimeout":"00:00:45"}}`,
		map[string]string{
			"Start": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"/orchestrators/{functionName}/",
				"methods":["post","Get","POST"]},{"type":"http","direction":"out","name":"res"}]}`,
			"Plain": "\xef\xbb\xbf" + `{"bindings":[{"type":"HttpTrigger","direction":"In","name":"request","authLevel":"Admin"},
				{"type":"http","direction":"out","name":"$return"}]}`,
			"Work": `{"disabled":"true","bindings":[{"type":"queueTrigger","direction":"in","name":"msg","queueName":"q","dataType":"binary"},
				{"type":"queue","direction":"out","name":"outQ","queueName":"r"}]}`,
		})
	// A folder without function.json is not a function.
	if err := os.MkdirAll(filepath.Join(root, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "notes", "README.md"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	cfg, err := LoadAppConfig(root)
	if err != nil {
		t.Fatalf("LoadAppConfig: %v", err)
	}
	if cfg.RoutePrefix != "v1" {
		t.Errorf("RoutePrefix = %q, want v1", cfg.RoutePrefix)
	}
	if cfg.FunctionTimeout != 10*time.Minute {
		t.Errorf("FunctionTimeout = %v", cfg.FunctionTimeout)
	}
	ch := cfg.CustomHandler
	if ch.Description.DefaultExecutablePath != "handler" || !slices.Equal(ch.Description.Arguments, []string{"-x", "%A%"}) ||
		ch.Description.WorkingDirectory != "wd" || !ch.EnableForwardingHTTPRequest || ch.InitializationTimeout != 45*time.Second || ch.Legacy {
		t.Errorf("CustomHandler = %+v", ch)
	}
	var names []string
	for _, f := range cfg.Functions {
		names = append(names, f.Name)
	}
	if !slices.Equal(names, []string{"Plain", "Start", "Work"}) {
		t.Fatalf("functions = %v", names)
	}

	start, _ := cfg.Function("start")
	if start.Name != "Start" || start.Route != "orchestrators/{functionName}" || !slices.Equal(start.Methods, []string{"POST", "GET"}) ||
		start.AuthLevel != "function" || start.HTTPOutput != "res" || start.TriggerName != "req" || !start.IsHTTPOnly() ||
		start.RouteTemplate() == nil {
		t.Errorf("Start = %+v", start)
	}
	plain, _ := cfg.Function("Plain")
	if plain.Route != "Plain" || len(plain.Methods) != 0 || plain.AuthLevel != "admin" || plain.HTTPOutput != "$return" || plain.TriggerName != "request" {
		t.Errorf("Plain = %+v", plain)
	}
	work, _ := cfg.Function("Work")
	if work.IsHTTP() || !work.Disabled || work.TriggerType != "queueTrigger" || work.RouteTemplate() != nil || len(work.Bindings) != 2 ||
		work.Bindings[0].DataType != "binary" || string(work.Bindings[0].Properties["queueName"]) != `"q"` {
		t.Errorf("Work = %+v", work)
	}
	if b, ok := work.OutputBinding("outQ"); !ok || b.Type != "queue" {
		t.Errorf("OutputBinding(outQ) = %+v, %v", b, ok)
	}
	if _, ok := work.OutputBinding("outq"); ok {
		t.Error("OutputBinding must match case-sensitively")
	}
}

func TestLoadAppConfigDefaults(t *testing.T) {
	root := writeApp(t, `{"version":"2.0","httpWorker":{"description":{"defaultExecutablePath":"old"}}}`, nil)
	cfg, err := LoadAppConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RoutePrefix != "api" || !cfg.CustomHandler.Legacy || cfg.CustomHandler.Description.DefaultExecutablePath != "old" || len(cfg.Functions) != 0 {
		t.Errorf("cfg = %+v", cfg)
	}
	root = writeApp(t, `{"extensions":{"http":{"routePrefix":""}}}`, nil)
	if cfg, err = LoadAppConfig(root); err != nil || cfg.RoutePrefix != "" {
		t.Errorf("empty routePrefix: %+v, %v", cfg, err)
	}
}

func TestLoadAppConfigErrors(t *testing.T) {
	okHost := `{"version":"2.0"}`
	tests := []struct {
		name      string
		host      string
		functions map[string]string
		wantErr   []string
	}{
		{"no host.json", "", nil, []string{"host.json"}},
		{"malformed host.json", `{"version":`, nil, []string{"host.json: malformed JSON"}},
		{"bad functionTimeout", `{"functionTimeout":"ten minutes"}`, nil, []string{"functionTimeout", "invalid time span"}},
		{"malformed function.json", okHost, map[string]string{"Broken": `{"bindings":[`},
			[]string{filepath.Join("Broken", "function.json") + ": malformed JSON"}},
		{"admin route", okHost, map[string]string{"A": httpFunctionJSON("admin/x", `[]`, "res")},
			[]string{filepath.Join("A", "function.json"), `route "admin/x" conflicts with the host's built-in routes`}},
		{"runtime route", okHost, map[string]string{"R": httpFunctionJSON("/Runtime/webhooks", `[]`, "res")},
			[]string{"Runtime/webhooks", "built-in routes"}},
		{"admin prefix of a word", okHost, map[string]string{"A": httpFunctionJSON("administrators", `[]`, "res")},
			[]string{"built-in routes"}},
		{"default route from name", okHost, map[string]string{"admins": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"}]}`},
			[]string{`route "admins"`}},
		{"no bindings", okHost, map[string]string{"E": `{}`}, []string{`no "bindings"`}},
		{"no trigger", okHost, map[string]string{"E": `{"bindings":[{"type":"http","direction":"out","name":"res"}]}`},
			[]string{"no trigger binding"}},
		{"two triggers", okHost, map[string]string{"E": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"a"},{"type":"queueTrigger","direction":"in","name":"b"}]}`},
			[]string{"more than one trigger"}},
		{"missing name", okHost, map[string]string{"E": `{"bindings":[{"type":"httpTrigger","direction":"in"}]}`},
			[]string{`binding 0: missing "name"`}},
		{"bad direction", okHost, map[string]string{"E": `{"bindings":[{"type":"httpTrigger","direction":"sideways","name":"req"}]}`},
			[]string{`direction "sideways"`}},
		{"bad authLevel", okHost, map[string]string{"E": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"everyone"}]}`},
			[]string{`authLevel "everyone"`}},
		{"bad methods", okHost, map[string]string{"E": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":"get"}]}`},
			[]string{`"methods" must be an array`}},
		{"bad route template", okHost, map[string]string{"E": httpFunctionJSON("a/{*x}/b", `[]`, "res")},
			[]string{"must be the last segment"}},
		{"route conflict", okHost, map[string]string{
			"One": httpFunctionJSON("items/{id}", `["get","post"]`, "res"),
			"Two": httpFunctionJSON("Items/{id}", `["POST"]`, "res"),
		}, []string{`route "Items/{id}" conflicts with the route of function "One"`}},
		{"every error reported", okHost, map[string]string{"X": `nope`, "Y": `{}`},
			[]string{filepath.Join("X", "function.json"), filepath.Join("Y", "function.json")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeApp(t, tt.host, tt.functions)
			_, err := LoadAppConfig(root)
			if err == nil {
				t.Fatal("LoadAppConfig succeeded, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestNoConflictForDisjointMethods(t *testing.T) {
	root := writeApp(t, `{}`, map[string]string{
		"Get":  httpFunctionJSON("items/{id}", `["get"]`, "res"),
		"Post": httpFunctionJSON("items/{id}", `["post"]`, "res"),
	})
	if _, err := LoadAppConfig(root); err != nil {
		t.Fatalf("LoadAppConfig: %v", err)
	}
}

func TestParseTimeSpan(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"00:05:00", 5 * time.Minute, true},
		{"01:02:03", time.Hour + 2*time.Minute + 3*time.Second, true},
		{"00:00:01.5", 1500 * time.Millisecond, true},
		{"1.02:00:00", 26 * time.Hour, true},
		{"08:09:00", 8*time.Hour + 9*time.Minute, true},
		{"-1", -1, true},
		{"5m", 0, false},
		{"00:60:00", 0, false},
		{"1.25:00:00", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseTimeSpan(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseTimeSpan(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
