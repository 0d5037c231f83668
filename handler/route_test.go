package handler

import (
	"maps"
	"strings"
	"testing"
	"time"
)

func TestRouteTemplateMatch(t *testing.T) {
	tests := []struct {
		template string
		path     string
		want     map[string]string // nil = no match
	}{
		{"hello", "hello", map[string]string{}},
		{"hello", "/HeLLo/", map[string]string{}},
		{"hello", "hello/x", nil},
		{"hello", "", nil},
		{"", "", map[string]string{}},
		{"", "x", nil},
		{"orchestrators/{functionName}", "orchestrators/Flow", map[string]string{"functionName": "Flow"}},
		{"orchestrators/{functionName}", "ORCHESTRATORS/Flow", map[string]string{"functionName": "Flow"}},
		{"orchestrators/{functionName}", "orchestrators", nil},
		{"orchestrators/{functionName}", "orchestrators//", nil},
		{"orchestrators/{functionName}/{instanceId?}", "orchestrators/Flow", map[string]string{"functionName": "Flow"}},
		{"orchestrators/{functionName}/{instanceId?}", "orchestrators/Flow/abc", map[string]string{"functionName": "Flow", "instanceId": "abc"}},
		{"orchestrators/{functionName}/{instanceId?}", "orchestrators/Flow/abc/d", nil},
		{"items/{id=7}", "items", map[string]string{"id": "7"}},
		{"items/{id=7}", "items/9", map[string]string{"id": "9"}},
		// Percent-decoding of segments, %2F stays inside its segment.
		{"files/{name}", "files/a%20b", map[string]string{"name": "a b"}},
		{"files/{name}", "files/a%2Fb", map[string]string{"name": "a/b"}},
		{"files/{name}", "files/%zz", nil},
		{"files/{name}", "files/pct%2541", map[string]string{"name": "pct%41"}}, // once, not twice
		{"static/{*rest}", "static/a%2Fb/pct%2541", map[string]string{"rest": "a/b/pct%41"}},
		{"static/{*rest}", "static/a/%zz", nil},
		{"café", "CAF%C3%89", map[string]string{}},
		// Catch-all keeps the rest of the path.
		{"static/{*rest}", "static/css/site%20x.css", map[string]string{"rest": "css/site x.css"}},
		{"static/{*rest}", "static", map[string]string{}},
		{"static/{**rest}", "static/a/b/", map[string]string{"rest": "a/b"}},
		{"static/{*rest=index.html}", "static", map[string]string{"rest": "index.html"}},
		{"durabletask/{*path}", "durabletask/instances/abc/raiseEvent/go", map[string]string{"path": "instances/abc/raiseEvent/go"}},
		// Constraints.
		{"items/{id:int}", "items/42", map[string]string{"id": "42"}},
		{"items/{id:int}", "items/x", nil},
		{"items/{id:int}", "items/99999999999", nil},
		{"items/{id:long}", "items/99999999999", map[string]string{"id": "99999999999"}},
		{"items/{id:int?}", "items", map[string]string{}},
		{"items/{id:int:min(10)}", "items/9", nil},
		{"items/{id:int:min(10)}", "items/10", map[string]string{"id": "10"}},
		{"items/{id:range(1,3)}", "items/4", nil},
		{"items/{id:guid}", "items/0f8fad5b-d9cb-469f-a165-70867728950e", map[string]string{"id": "0f8fad5b-d9cb-469f-a165-70867728950e"}},
		{"items/{id:guid}", "items/nope", nil},
		{"items/{name:alpha:minlength(2)}", "items/ab", map[string]string{"name": "ab"}},
		{"items/{name:alpha:minlength(2)}", "items/a", nil},
		{"items/{name:alpha}", "items/a1", nil},
		{"items/{name:length(2,3)}", "items/abcd", nil},
		{"items/{flag:bool}", "items/TRUE", map[string]string{"flag": "TRUE"}},
		{"items/{code:regex(^[a-z]+\\d$)}", "items/AB1", map[string]string{"code": "AB1"}},
		{"items/{when:datetime}", "items/2025-01-01T10:00:00", map[string]string{"when": "2025-01-01T10:00:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.template+" "+tt.path, func(t *testing.T) {
			tmpl, err := ParseRouteTemplate(tt.template)
			if err != nil {
				t.Fatalf("ParseRouteTemplate: %v", err)
			}
			got, ok := tmpl.Match(tt.path)
			if tt.want == nil {
				if ok {
					t.Fatalf("Match(%q) = %v, want no match", tt.path, got)
				}
				return
			}
			if !ok {
				t.Fatalf("Match(%q): no match, want %v", tt.path, tt.want)
			}
			if !maps.Equal(got, tt.want) {
				t.Fatalf("Match(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}

func TestParseRouteTemplateErrors(t *testing.T) {
	tests := []struct {
		template string
		wantErr  string
	}{
		{"a/{*rest}/b", "must be the last segment"},
		{"a/{x?}/b", "may only be followed by optional segments"},
		{"a/{x}/{X}", "appears more than once"},
		{"a//b", "empty segment"},
		{"a/{x}.{y}", "exactly one {parameter}"},
		{"a/pre{x}", "exactly one {parameter}"},
		{"a/{}", "invalid parameter name"},
		{"a/{x:nosuch}", "unsupported route constraint"},
		{"a/{x:int(3)}", "takes no arguments"},
		{"a/{x:minlength}", "wrong number of arguments"},
		{"a/{x:regex(()}", "missing ')'"},
		{"a/{*x?}", "cannot be marked optional"},
		{"a/{x?y}", "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			_, err := ParseRouteTemplate(tt.template)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseRouteTemplate(%q) error = %v, want it to contain %q", tt.template, err, tt.wantErr)
			}
		})
	}
}

func TestRouteTemplateParamNames(t *testing.T) {
	tmpl, err := ParseRouteTemplate("/orchestrators/{functionName}/{instanceId?}/")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tmpl.ParamNames(), ","); got != "functionName,instanceId" {
		t.Fatalf("ParamNames = %q", got)
	}
	if tmpl.String() != "orchestrators/{functionName}/{instanceId?}" {
		t.Fatalf("String = %q", tmpl.String())
	}
}

func TestRouterPrecedenceAndMethods(t *testing.T) {
	fns := []FunctionInfo{
		{Name: "ByID", TriggerType: "httpTrigger", Route: "items/{id}", Methods: []string{"GET"}},
		{Name: "Special", TriggerType: "httpTrigger", Route: "items/special", Methods: []string{"POST"}},
		{Name: "Numeric", TriggerType: "httpTrigger", Route: "items/{id:int}", Methods: []string{"GET"}},
		{Name: "Rest", TriggerType: "httpTrigger", Route: "items/{*rest}"},
		{Name: "Off", TriggerType: "httpTrigger", Route: "off", Disabled: true},
	}
	r, err := NewRouter("/api/", fns)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		want         string // function name, "" = none
		wantAllowed  string
	}{
		{"POST", "/api/items/special", "Special", ""},
		{"GET", "/api/items/special", "ByID", ""},
		{"GET", "/API/items/12", "Numeric", ""},
		{"GET", "/api/items/abc", "ByID", ""},
		{"DELETE", "/api/items/abc", "Rest", ""},
		{"GET", "/api/items/a/b", "Rest", ""},
		{"GET", "/api/off", "", ""},
		{"GET", "/other/items/1", "", ""},
		{"GET", "/apix/items/1", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			m, allowed, ok := r.Route(tt.method, tt.path)
			if tt.want == "" {
				if ok {
					t.Fatalf("matched %s, want none", m.Function.Name)
				}
				return
			}
			if !ok || m.Function.Name != tt.want {
				t.Fatalf("Route = %q (ok=%v, allowed=%v), want %q", m.Function.Name, ok, allowed, tt.want)
			}
		})
	}

	r2, err := NewRouter("api", fns[:3])
	if err != nil {
		t.Fatal(err)
	}
	_, allowed, ok := r2.Route("PUT", "/api/items/7")
	if ok || strings.Join(allowed, ",") != "GET" {
		t.Fatalf("PUT: ok=%v allowed=%v, want GET only", ok, allowed)
	}
	_, allowed, ok = r2.Route("PUT", "/api/items/special")
	if ok || strings.Join(allowed, ",") != "POST,GET" {
		t.Fatalf("PUT special: ok=%v allowed=%v, want POST,GET", ok, allowed)
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2025-01-01T10:00:00+00:00", time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)},
		{"2025-01-01T10:00:00.1234567Z", time.Date(2025, 1, 1, 10, 0, 0, 123456700, time.UTC)},
		{"2025-01-01T10:00:00", time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)},
		{"2025-01-01T12:00:00+02:00", time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)},
		{"2025-01-01", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if _, err := ParseTime("yesterday"); err == nil {
		t.Error("ParseTime(yesterday) succeeded")
	}
}
