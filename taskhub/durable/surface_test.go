package durable

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// engineHooks are names the engine and the replay checker use, which live
// in taskhub/internal/replay and must not come back into this package's
// API ("Type.Method" for methods).
var engineHooks = []string{
	"Executor", "NewExecutor", "OrchestratorFunc", "ActivityFunc",
	"TaskState", "TaskUnknown", "TaskAwaiting", "TaskResolved",
	"WithActivityInfo", "FailureFromError",
	"Registry.AddOrchestratorFunc", "Registry.AddActivityFunc",
	"Registry.Orchestrator", "Registry.Activity",
	"EntityFunc", "EntityBatch", "EntityBatchResult", "EntityAction", "EntityRequest", "LookupEntity",
	"Registry.Entity", "Entity.ExecuteBatch",
}

// publicSurface returns what godoc shows of a package given as parsed
// files: every exported name ("Type.Method" for methods, promoted ones
// included), and the exported declarations whose visible part (signature,
// exported fields, values) names something from an internal package, which
// would hand users a hook they cannot import but can call.
func publicSurface(t *testing.T, fset *token.FileSet, files []*ast.File) (names []string, leaks []string) {
	t.Helper()
	internal := map[string]bool{} // local names of imported internal packages
	for _, f := range files {
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatalf("import %s: %v", imp.Path.Value, err)
			}
			if !strings.Contains(path+"/", "/internal/") {
				continue
			}
			name := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				name = imp.Name.Name
			}
			internal[name] = true
		}
	}
	// Mode 0 keeps exported names only and drops function bodies, as godoc.
	pkg, err := doc.NewFromFiles(fset, files, "github.com/go-durable/durablefunctions/taskhub/durable")
	if err != nil {
		t.Fatal(err)
	}
	add := func(name string, decl ast.Node) {
		names = append(names, name)
		ast.Inspect(decl, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && internal[id.Name] {
					leaks = append(leaks, name+" mentions "+id.Name+"."+sel.Sel.Name)
				}
			}
			return true
		})
	}
	values := func(vs []*doc.Value) {
		for _, v := range vs {
			add(strings.Join(v.Names, ","), v.Decl)
		}
	}
	values(pkg.Consts)
	values(pkg.Vars)
	for _, f := range pkg.Funcs {
		add(f.Name, f.Decl)
	}
	for _, ty := range pkg.Types {
		add(ty.Name, ty.Decl)
		values(ty.Consts)
		values(ty.Vars)
		for _, f := range ty.Funcs {
			add(f.Name, f.Decl)
		}
		for _, m := range ty.Methods {
			add(ty.Name+"."+m.Name, m.Decl)
		}
	}
	// Grouped consts and vars come as "A,B": list each name.
	var flat []string
	for _, n := range names {
		flat = append(flat, strings.Split(n, ",")...)
	}
	sort.Strings(flat)
	return flat, leaks
}

// surfaceProblems lists the engine hooks among names, and the leaks.
func surfaceProblems(names, leaks []string) []string {
	var problems []string
	for _, h := range engineHooks {
		if slices.Contains(names, h) {
			problems = append(problems, h+" is exported")
		}
	}
	return append(problems, leaks...)
}

func parseSource(t *testing.T, fset *token.FileSet, name, src string) *ast.File {
	t.Helper()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

// TestPublicSurfaceChecker shows that the check below catches hooks by
// name and by type, and passes what the package does today.
func TestPublicSurfaceChecker(t *testing.T) {
	const header = "package durable\n\nimport \"github.com/go-durable/durablefunctions/taskhub/internal/replay\"\n\n"
	tests := []struct {
		name, src string
		want      []string
	}{
		{"unexported implementation", `type executor struct{}
func (e *executor) TaskState(int32) replay.TaskState { return replay.TaskUnknown }
type Registry struct{ activities map[string]replay.ActivityFunc }
func NewRegistry() *Registry { return &Registry{} }
func init() { replay.Install(replay.Hooks{}) }`, nil},
		{"exported hook by name", `func FailureFromError(err error) error { return err }`,
			[]string{"FailureFromError is exported"}},
		{"exported method", `type Registry struct{}
func (r *Registry) Orchestrator(name string) (func(), bool) { return nil, false }`,
			[]string{"Registry.Orchestrator is exported"}},
		{"internal type in a signature", `type Registry struct{}
func (r *Registry) Lookup(name string) replay.Orchestrator { return nil }`,
			[]string{"Registry.Lookup mentions replay.Orchestrator"}},
		{"internal type in an exported field", `type Registry struct{ Hooks replay.Hooks }`,
			[]string{"Registry mentions replay.Hooks"}},
		{"alias", `type Executor = replay.Executor`,
			[]string{"Executor is exported", "Executor mentions replay.Executor"}},
		{"promoted from an embedded internal type", `type Registry struct{ *replay.Hooks }`,
			[]string{"Registry mentions replay.Hooks"}},
		{"exported var", `var Install = replay.Install`,
			[]string{"Install mentions replay.Install"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fset := token.NewFileSet()
			names, leaks := publicSurface(t, fset, []*ast.File{parseSource(t, fset, "x.go", header+tc.src)})
			if got := surfaceProblems(names, leaks); !slices.Equal(got, tc.want) {
				t.Errorf("problems = %q, want %q (names %q)", got, tc.want, names)
			}
		})
	}
}

// TestPublicSurface fails if an engine hook is exported from this package
// again: the engine reaches the replay core through taskhub/internal/replay.
func TestPublicSurface(t *testing.T) {
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, parseSource(t, fset, p, string(src)))
	}
	names, leaks := publicSurface(t, fset, files)
	for _, p := range surfaceProblems(names, leaks) {
		t.Errorf("taskhub/durable's API: %s (engine hooks belong in taskhub/internal/replay)", p)
	}
	// The user API is all there: the check read the package.
	for _, want := range []string{"NewOrchestrator", "NewActivity", "NewRegistry", "Registry.Add",
		"Registry.OrchestratorNames", "Context.Sleep", "ActivityInfoFrom", "TaskFailedError", "ErrCanceled",
		"NewEntity", "NewEntityFunc", "Op", "OpResult", "Operations", "EntityID", "NewEntityID", "Registry.EntityNames",
		"EntityContext.State", "EntityContext.SetState", "EntityContext.DeleteState", "EntityContext.Return",
		"EntityContext.SignalEntity", "EntityContext.SignalEntityAt", "EntityContext.StartOrchestration",
		"UnknownOperationError", "EntityStateError"} {
		if !slices.Contains(names, want) {
			t.Errorf("the public surface lacks %s; it has %q", want, names)
		}
	}
}
