package durablecheck

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
	"strings"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/types/typeutil"
)

// durablePath is the import path of the programming model.
const durablePath = "github.com/go-durable/durablefunctions/taskhub/durable"

// Directive is the comment that silences the analyzer: on a line (or alone
// on the line above) it silences what is found there; on a function's line
// or in its doc comment it silences the whole function and the helpers it
// calls from there. Text after it (a reason) is allowed.
const Directive = "//durable:nondeterministic-ok"

// Analyzer reports code in orchestrator functions that breaks replay.
var Analyzer = &analysis.Analyzer{
	Name: "durablecheck",
	Doc: "report non-deterministic code in Durable Functions orchestrators\n\n" +
		"Orchestrators (functions passed to durable.NewOrchestrator and every function whose first parameter is " +
		"a *durable.Context), and the functions of the same package they call, must not read the clock, draw " +
		"random numbers, start goroutines, use channels or select, depend on map iteration order, or do I/O. " +
		"Silence a finding with a " + Directive + " comment on its line or on the function.",
	Run: run,
}

// checker holds one package's state.
type checker struct {
	pass       *analysis.Pass
	decls      map[*types.Func]*ast.FuncDecl // functions declared in the checked files
	orchNames  map[*types.Func]string        // named functions passed to NewOrchestrator
	litNames   map[*ast.FuncLit]string       // function literals passed to NewOrchestrator
	activities map[*ast.FuncLit]bool         // function literals passed to NewActivity: free to do anything
	okLines    map[*token.File]map[int]bool  // lines silenced by the directive
	reported   map[token.Pos]bool
	walked     map[*types.Func]bool // helpers already checked (from the first orchestrator that reaches them)
}

// scope says where a finding is: "in orchestrator "X"", or in a helper on a
// call path from one.
type scope struct {
	root  string   // the orchestrator's description
	path  []string // names on the call path, the orchestrator's first
	where string
}

func (s scope) into(name string) scope {
	path := append(append([]string(nil), s.path...), name)
	return scope{root: s.root, path: path,
		where: fmt.Sprintf("in %s, called from %s via %s", name, s.root, strings.Join(path, " → "))}
}

func run(pass *analysis.Pass) (any, error) {
	c := &checker{
		pass:       pass,
		decls:      map[*types.Func]*ast.FuncDecl{},
		orchNames:  map[*types.Func]string{},
		litNames:   map[*ast.FuncLit]string{},
		activities: map[*ast.FuncLit]bool{},
		okLines:    map[*token.File]map[int]bool{},
		reported:   map[token.Pos]bool{},
		walked:     map[*types.Func]bool{},
	}
	files := c.checkedFiles()
	for _, f := range files {
		c.prepare(f)
	}
	for _, f := range files {
		c.checkRoots(f)
	}
	return nil, nil
}

// checkedFiles leaves out the non-test files of the programming model itself
// (taskhub/durable and the packages under it): they implement the
// replay-safe primitives with goroutines and channels by design.
func (c *checker) checkedFiles() []*ast.File {
	path := c.pass.Pkg.Path()
	library := path == durablePath || strings.HasPrefix(path, durablePath+"/")
	var files []*ast.File
	for _, f := range c.pass.Files {
		if library && !strings.HasSuffix(c.pass.Fset.File(f.FileStart).Name(), "_test.go") {
			continue
		}
		files = append(files, f)
	}
	return files
}

// prepare records a file's directives, function declarations and the
// functions it passes to NewOrchestrator and NewActivity.
func (c *checker) prepare(f *ast.File) {
	tf := c.pass.Fset.File(f.FileStart)
	lines := map[int]bool{}
	var src []byte // read at the first directive
	for _, cg := range f.Comments {
		for _, cm := range cg.List {
			if !isDirective(cm.Text) {
				continue
			}
			if src == nil {
				src = c.source(tf)
			}
			line := tf.Line(cm.Pos())
			lines[line] = true
			if aloneOnLine(tf, src, cm) {
				lines[line+1] = true
			}
		}
	}
	c.okLines[tf] = lines

	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.FuncDecl:
			if fn, ok := c.pass.TypesInfo.Defs[x.Name].(*types.Func); ok {
				c.decls[fn] = x
			}
		case *ast.CallExpr:
			fn := typeutil.StaticCallee(c.pass.TypesInfo, x)
			if fn == nil || fn.Pkg() == nil || fn.Pkg().Path() != durablePath || len(x.Args) != 2 {
				return true
			}
			switch fn.Name() {
			case "NewOrchestrator":
				name := "orchestrator"
				if tv, ok := c.pass.TypesInfo.Types[x.Args[0]]; ok && tv.Value != nil && tv.Value.Kind() == constant.String {
					name = fmt.Sprintf("orchestrator %q", constant.StringVal(tv.Value))
				}
				switch arg := ast.Unparen(x.Args[1]).(type) {
				case *ast.FuncLit:
					c.litNames[arg] = name
				case *ast.Ident:
					if fn, ok := c.pass.TypesInfo.Uses[arg].(*types.Func); ok {
						c.orchNames[fn.Origin()] = name
					}
				case *ast.SelectorExpr:
					if fn, ok := c.pass.TypesInfo.Uses[arg.Sel].(*types.Func); ok {
						c.orchNames[fn.Origin()] = name
					}
				}
			case "NewActivity":
				if lit, ok := ast.Unparen(x.Args[1]).(*ast.FuncLit); ok {
					c.activities[lit] = true
				}
			}
		}
		return true
	})
}

// isDirective reports whether a comment is the escape hatch.
func isDirective(text string) bool {
	rest, ok := strings.CutPrefix(text, Directive)
	return ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t')
}

// source returns a file's text, or an empty slice when it cannot be read
// (then every directive counts as standing alone on its line).
func (c *checker) source(tf *token.File) []byte {
	if c.pass.ReadFile != nil {
		if src, err := c.pass.ReadFile(tf.Name()); err == nil {
			return src
		}
	}
	return []byte{}
}

// aloneOnLine reports whether only blanks precede the comment on its line,
// so that it applies to the next line too.
func aloneOnLine(tf *token.File, src []byte, cm *ast.Comment) bool {
	start, off := tf.Offset(tf.LineStart(tf.Line(cm.Pos()))), tf.Offset(cm.Pos())
	if off > len(src) {
		return true
	}
	return strings.TrimSpace(string(src[start:off])) == ""
}

// silencedAt reports whether a directive covers the line of pos.
func (c *checker) silencedAt(pos token.Pos) bool {
	tf := c.pass.Fset.File(pos)
	return tf != nil && c.okLines[tf][tf.Line(pos)]
}

// silencedDecl reports whether a function declaration carries the directive.
func (c *checker) silencedDecl(d *ast.FuncDecl) bool {
	if d.Doc != nil {
		for _, cm := range d.Doc.List {
			if isDirective(cm.Text) {
				return true
			}
		}
	}
	return c.silencedAt(d.Pos())
}

// checkRoots checks every orchestrator function of a file: declarations and
// literals whose first parameter is a *durable.Context (which includes all
// functions passed to NewOrchestrator).
func (c *checker) checkRoots(f *ast.File) {
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.FuncDecl:
			if c.silencedDecl(x) {
				return false // with the literals inside
			}
			fn, _ := c.pass.TypesInfo.Defs[x.Name].(*types.Func)
			if fn == nil || x.Body == nil || !takesContext(fn.Signature()) {
				return true
			}
			root := funcLabel(fn)
			if name, ok := c.orchNames[fn]; ok {
				root = name
			}
			c.walk(x.Body, scope{root: root, path: []string{funcLabel(fn)}, where: "in " + root})
		case *ast.FuncLit:
			if c.activities[x] || c.silencedAt(x.Pos()) {
				return false
			}
			sig, _ := c.pass.TypesInfo.TypeOf(x).(*types.Signature)
			if sig == nil || !takesContext(sig) {
				return true
			}
			root, label := "a function literal taking a *durable.Context", "func literal"
			if name, ok := c.litNames[x]; ok {
				root, label = name, strings.TrimPrefix(name, "orchestrator ")
			}
			c.walk(x.Body, scope{root: root, path: []string{label}, where: "in " + root})
		}
		return true
	})
}

// takesContext reports whether a signature's first parameter is a
// *durable.Context.
func takesContext(sig *types.Signature) bool {
	if sig.Params().Len() == 0 {
		return false
	}
	ptr, ok := types.Unalias(sig.Params().At(0).Type()).(*types.Pointer)
	if !ok {
		return false
	}
	named, ok := types.Unalias(ptr.Elem()).(*types.Named)
	return ok && named.Obj().Pkg() != nil && named.Obj().Pkg().Path() == durablePath && named.Obj().Name() == "Context"
}

// funcLabel names a function as its code does: F or T.M.
func funcLabel(fn *types.Func) string {
	if recv := fn.Signature().Recv(); recv != nil {
		t := recv.Type()
		if p, ok := t.(*types.Pointer); ok {
			t = p.Elem()
		}
		if named, ok := types.Unalias(t).(*types.Named); ok {
			return named.Obj().Name() + "." + fn.Name()
		}
	}
	return fn.Name()
}

// walk checks the code of an orchestrator (or of a helper it calls).
func (c *checker) walk(body ast.Node, sc scope) {
	info := c.pass.TypesInfo
	ast.Inspect(body, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.FuncLit:
			// Closures run as part of the orchestrator, except activities.
			return !c.activities[x] && !c.silencedAt(x.Pos())
		case *ast.GoStmt:
			c.report(x.Pos(), "go statement", sc, adviceGo)
			return false // the goroutine's body is the same mistake
		case *ast.SelectStmt:
			c.report(x.Pos(), "select statement", sc, adviceSelect)
			for _, cl := range x.Body.List {
				for _, st := range cl.(*ast.CommClause).Body {
					c.walk(st, sc)
				}
			}
			return false
		case *ast.SendStmt:
			c.report(x.Pos(), "channel send", sc, adviceChannel)
		case *ast.UnaryExpr:
			if x.Op == token.ARROW {
				c.report(x.Pos(), "channel receive", sc, adviceChannel)
			}
		case *ast.RangeStmt:
			c.checkRange(x, sc)
		case *ast.SelectorExpr:
			c.checkSelector(x, sc)
			c.walk(x.X, sc)
			return false
		case *ast.Ident:
			c.checkObject(info.Uses[x], x.Pos(), sc)
		case *ast.CallExpr:
			c.checkCall(x, sc)
		}
		return true
	})
}

// checkRange flags ranges over channels and maps (and over the iterators of
// maps.Keys, maps.Values and maps.All). A map range whose order cannot
// matter is left alone: one that binds neither key nor value (it counts),
// and one whose body only copies into maps or deletes (orderFree).
func (c *checker) checkRange(r *ast.RangeStmt, sc scope) {
	t := c.pass.TypesInfo.TypeOf(r.X)
	if t == nil {
		return
	}
	switch t.Underlying().(type) {
	case *types.Chan:
		c.report(r.Pos(), "range over a channel", sc, adviceChannel)
	case *types.Map:
		if (!isBlank(r.Key) || !isBlank(r.Value)) && !c.orderFree(r.Body) {
			c.report(r.Pos(), "range over a map", sc, adviceMap)
		}
	case *types.Signature:
		call, ok := ast.Unparen(r.X).(*ast.CallExpr)
		if !ok {
			return
		}
		fn := typeutil.StaticCallee(c.pass.TypesInfo, call)
		if fn != nil && fn.Pkg() != nil && fn.Pkg().Path() == "maps" &&
			(fn.Name() == "Keys" || fn.Name() == "Values" || fn.Name() == "All") {
			c.report(r.Pos(), "range over maps."+fn.Name(), sc, adviceMap)
		}
	}
}

// orderFree reports whether a loop body only stores into maps or deletes
// from them, without calling functions: copying or filtering a map gives the
// same map in any order. Anything else (a call, an append, a return) may
// depend on the order.
func (c *checker) orderFree(body *ast.BlockStmt) bool {
	info := c.pass.TypesInfo
	for _, st := range body.List {
		switch st := st.(type) {
		case *ast.AssignStmt:
			if st.Tok != token.ASSIGN {
				return false
			}
			for _, lhs := range st.Lhs {
				ix, ok := ast.Unparen(lhs).(*ast.IndexExpr)
				if !ok {
					return false
				}
				if _, ok := info.TypeOf(ix.X).Underlying().(*types.Map); !ok {
					return false
				}
			}
		case *ast.ExprStmt:
			call, ok := ast.Unparen(st.X).(*ast.CallExpr)
			if !ok {
				return false
			}
			if id, ok := ast.Unparen(call.Fun).(*ast.Ident); !ok || info.Uses[id] != types.Universe.Lookup("delete") {
				return false
			}
		default:
			return false
		}
		if !c.callFree(st) {
			return false
		}
	}
	return true
}

// callFree reports whether a statement calls nothing but builtins and
// conversions.
func (c *checker) callFree(st ast.Stmt) bool {
	free := true
	ast.Inspect(st, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || !free {
			return free
		}
		fun := ast.Unparen(call.Fun)
		if tv, ok := c.pass.TypesInfo.Types[fun]; ok && tv.IsType() {
			return true
		}
		if id, ok := fun.(*ast.Ident); ok {
			if _, ok := c.pass.TypesInfo.Uses[id].(*types.Builtin); ok {
				return true
			}
		}
		free = false
		return false
	})
	return free
}

func isBlank(e ast.Expr) bool {
	id, ok := e.(*ast.Ident)
	return e == nil || ok && id.Name == "_"
}

// checkSelector flags pkg.F, pkg.V and method calls on I/O types.
func (c *checker) checkSelector(sel *ast.SelectorExpr, sc scope) {
	info := c.pass.TypesInfo
	s, ok := info.Selections[sel]
	if !ok {
		c.checkObject(info.Uses[sel.Sel], sel.Pos(), sc)
		return
	}
	fn, ok := s.Obj().(*types.Func)
	if !ok || fn.Pkg() == nil {
		return
	}
	recv := fn.Signature().Recv()
	if recv == nil {
		return
	}
	t, ptr := recv.Type(), false
	if p, ok := t.(*types.Pointer); ok {
		t, ptr = p.Elem(), true
	}
	named, ok := types.Unalias(t).(*types.Named)
	if !ok {
		return
	}
	advice := methodAdvice(fn.Pkg().Path(), named.Obj().Name(), fn.Name())
	if advice == "" {
		return
	}
	subject := fmt.Sprintf("%s.%s.%s", fn.Pkg().Path(), named.Obj().Name(), fn.Name())
	if ptr {
		subject = fmt.Sprintf("(*%s.%s).%s", fn.Pkg().Path(), named.Obj().Name(), fn.Name())
	}
	c.report(sel.Pos(), subject, sc, advice)
}

// checkObject flags a use of a package-level function or variable of the
// rules' packages.
func (c *checker) checkObject(obj types.Object, pos token.Pos, sc scope) {
	if obj == nil || obj.Pkg() == nil {
		return
	}
	pkg := obj.Pkg().Path()
	if _, ok := rules[pkg]; !ok {
		return
	}
	var advice string
	switch o := obj.(type) {
	case *types.Func:
		if o.Signature().Recv() == nil {
			advice = funcAdvice(pkg, o.Name())
		}
	case *types.Var:
		if o.Parent() == o.Pkg().Scope() {
			advice = varAdvice(pkg, o.Name())
		}
	}
	if advice != "" {
		c.report(pos, pkg+"."+obj.Name(), sc, advice)
	}
}

// checkCall flags the print builtins and follows static calls into
// functions of the same package.
func (c *checker) checkCall(call *ast.CallExpr, sc scope) {
	info := c.pass.TypesInfo
	if id, ok := ast.Unparen(call.Fun).(*ast.Ident); ok {
		if b, ok := info.Uses[id].(*types.Builtin); ok && (b.Name() == "print" || b.Name() == "println") {
			c.report(call.Pos(), "builtin "+b.Name(), sc, adviceStdout)
			return
		}
	}
	fn := typeutil.StaticCallee(info, call)
	if fn == nil || fn.Pkg() != c.pass.Pkg {
		return
	}
	fn = fn.Origin()
	decl := c.decls[fn]
	// A callee that takes a *durable.Context is checked as an orchestrator
	// of its own; a silenced call is not followed.
	if decl == nil || decl.Body == nil || c.walked[fn] || takesContext(fn.Signature()) ||
		c.silencedAt(call.Pos()) || c.silencedDecl(decl) {
		return
	}
	c.walked[fn] = true
	c.walk(decl.Body, sc.into(funcLabel(fn)))
}

// report records a finding unless a directive silences its line or it was
// already reported (a closure reached from two orchestrators).
func (c *checker) report(pos token.Pos, subject string, sc scope, advice string) {
	if c.reported[pos] || c.silencedAt(pos) {
		return
	}
	c.reported[pos] = true
	c.pass.Reportf(pos, "%s %s: %s", subject, sc.where, advice)
}
