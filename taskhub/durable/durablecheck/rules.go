package durablecheck

import "strings"

// Advice texts: what is wrong and what to use instead. Each diagnostic is
// "<what> <where>: <advice>".
const (
	adviceClock     = "the clock reads differently on every replay; use ctx.CurrentTime(), the episode's start time as history records it"
	adviceSleep     = "it blocks the orchestrator and is not recorded in history; use ctx.Sleep(d), a durable timer"
	adviceTimer     = "a real-time timer is not recorded in history and fires outside replay; use ctx.CreateTimer(ctx.CurrentTime().Add(d)) or ctx.Sleep(d)"
	adviceMathRand  = "random values differ on every replay; use ctx.NewGUID() for unique IDs, generate random values in an activity, or use rand.New with a seed taken from the orchestrator's input"
	adviceCryptRand = "random bytes differ on every replay; use ctx.NewGUID() for unique IDs, or generate them in an activity"
	adviceEnv       = "the environment can differ when the orchestrator replays (on another worker, after a settings change); read it in an activity or pass it in the input"
	adviceFile      = "file and process I/O runs again on every replay and its result can differ; do it in an activity"
	adviceProcess   = "it runs a process again on every replay; do it in an activity"
	adviceSignal    = "signals are process state, not orchestration state; handle them outside orchestrators"
	adviceNet       = "network I/O runs again on every replay and its answer can differ; do it in an activity"
	adviceHTTP      = "an HTTP call runs again on every replay and its answer can differ; make it in an activity (or with the durable HTTP call, CallHTTP)"
	adviceSQL       = "database I/O runs again on every replay and its answer can differ; do it in an activity"
	adviceSyscall   = "system calls run again on every replay; make them in an activity"
	adviceStdout    = "it writes again on every replay; log with ctx.Logger(), which stays silent during replay"
	adviceStdin     = "reading standard input is I/O whose result differs on replay; do it in an activity"

	adviceGo      = "a goroutine runs outside the replay scheduler and nothing it does is recorded; start activities or sub-orchestrations and await them with durable.WhenAll or durable.WhenAny"
	adviceSelect  = "which case is chosen depends on goroutine scheduling, not on history; wait on tasks with durable.WhenAny (or durable.WhenAll)"
	adviceChannel = "channel operations block outside the replay scheduler (an orchestrator may only wait in Await); use tasks with durable.WhenAll/WhenAny, or external events (durable.WaitForExternalEvent)"
	adviceMap     = "Go randomizes map iteration order, so calls, appends or results that follow it can differ on replay; range over sorted keys instead (slices.Sorted(maps.Keys(m)))"
)

// pkgRule flags every exported package-level function of a package (and the
// package-level variables listed in vars), except the functions in allow,
// which compute without I/O. methods lists receiver type names whose method
// calls are flagged too.
type pkgRule struct {
	advice  string
	allow   []string          // pure functions that stay allowed
	vars    map[string]string // flagged variables, with their advice
	methods []string          // receiver types whose methods do I/O
	// only, when set, restricts the rule to these functions (advice per name).
	only map[string]string
}

// rules is the list of what orchestrator code may not use, by package path.
// It is documented in doc.go; keep both in step.
var rules = map[string]pkgRule{
	"time": {only: map[string]string{
		"Now": adviceClock, "Since": adviceClock, "Until": adviceClock,
		"Sleep": adviceSleep,
		"After": adviceTimer, "Tick": adviceTimer, "NewTimer": adviceTimer,
		"NewTicker": adviceTimer, "AfterFunc": adviceTimer,
	}},
	// A generator built with rand.New from an explicit seed is deterministic;
	// the package-level functions use a random seed.
	"math/rand":    {advice: adviceMathRand, allow: []string{"New", "NewSource", "NewZipf"}},
	"math/rand/v2": {advice: adviceMathRand, allow: []string{"New", "NewPCG", "NewChaCha8", "NewZipf"}},
	"crypto/rand":  {advice: adviceCryptRand, vars: map[string]string{"Reader": adviceCryptRand}},
	"os": {
		advice: adviceFile,
		allow:  []string{"IsExist", "IsNotExist", "IsPermission", "IsTimeout", "IsPathSeparator", "NewSyscallError"},
		vars: map[string]string{
			"Stdout": adviceStdout, "Stderr": adviceStdout, "Stdin": adviceStdin, "Args": adviceEnv,
		},
		methods: []string{"File", "Process", "Root"},
	},
	"os/exec":   {advice: adviceProcess, methods: []string{"Cmd"}},
	"os/signal": {advice: adviceSignal},
	"io/ioutil": {advice: adviceFile, allow: []string{"NopCloser", "ReadAll"}},
	"syscall":   {advice: adviceSyscall},
	"net": {
		advice: adviceNet,
		allow: []string{"ParseIP", "ParseCIDR", "ParseMAC", "JoinHostPort", "SplitHostPort", "IPv4", "IPv4Mask",
			"CIDRMask", "TCPAddrFromAddrPort", "UDPAddrFromAddrPort"},
		vars: map[string]string{"DefaultResolver": adviceNet},
		methods: []string{"Conn", "PacketConn", "Listener", "TCPConn", "UDPConn", "UnixConn", "IPConn",
			"TCPListener", "UnixListener", "Dialer", "Resolver", "ListenConfig", "Interface"},
	},
	"net/http": {
		advice: adviceHTTP,
		allow: []string{"StatusText", "CanonicalHeaderKey", "DetectContentType", "ParseHTTPVersion", "ParseTime",
			"NewRequest", "NewRequestWithContext", "ParseCookie", "ParseSetCookie"},
		vars: map[string]string{
			"DefaultClient": adviceHTTP, "DefaultTransport": adviceHTTP, "DefaultServeMux": adviceHTTP,
		},
		methods: []string{"Client", "Transport", "RoundTripper", "Server"},
	},
	"database/sql": {advice: adviceSQL, allow: []string{"Named"}, methods: []string{"DB", "Conn", "Tx", "Stmt", "Rows", "Row"}},
	"fmt": {only: map[string]string{
		"Print": adviceStdout, "Printf": adviceStdout, "Println": adviceStdout,
		"Scan": adviceStdin, "Scanf": adviceStdin, "Scanln": adviceStdin,
	}},
	"log": {advice: adviceStdout, methods: []string{"Logger"}}, // only the functions that write: isLogOutput
	"log/slog": {only: map[string]string{
		"Debug": adviceStdout, "DebugContext": adviceStdout, "Info": adviceStdout, "InfoContext": adviceStdout,
		"Warn": adviceStdout, "WarnContext": adviceStdout, "Error": adviceStdout, "ErrorContext": adviceStdout,
		"Log": adviceStdout, "LogAttrs": adviceStdout, "Default": adviceStdout,
	}},
}

// envFuncs are the os functions that read the environment or the process's
// identity rather than files.
var envFuncs = map[string]bool{
	"Getenv": true, "LookupEnv": true, "Environ": true, "ExpandEnv": true, "Hostname": true,
	"Getpid": true, "Getppid": true, "Getuid": true, "Geteuid": true, "Getgid": true, "Getegid": true,
	"Getwd": true, "Executable": true, "UserHomeDir": true, "UserCacheDir": true, "UserConfigDir": true, "TempDir": true,
}

// funcAdvice returns the advice for a call of (or reference to) the
// package-level function pkg.name, or "" when it is allowed.
func funcAdvice(pkg, name string) string {
	r, ok := rules[pkg]
	if !ok {
		return ""
	}
	if r.only != nil {
		return r.only[name]
	}
	for _, a := range r.allow {
		if a == name {
			return ""
		}
	}
	switch {
	case pkg == "os" && envFuncs[name]:
		return adviceEnv
	case pkg == "log" && !isLogOutput(name):
		return ""
	}
	return r.advice
}

// varAdvice returns the advice for a use of the package-level variable
// pkg.name, or "" when it is allowed.
func varAdvice(pkg, name string) string {
	return rules[pkg].vars[name]
}

// methodAdvice returns the advice for a call of a method of the named type
// pkg.recv, or "" when it is allowed.
func methodAdvice(pkg, recv, method string) string {
	r, ok := rules[pkg]
	if !ok {
		return ""
	}
	for _, m := range r.methods {
		if m == recv {
			if pkg == "log" && !isLogOutput(method) {
				return ""
			}
			return r.advice
		}
	}
	return ""
}

// isLogOutput reports whether a *log.Logger method writes (the others only
// read or change its settings).
func isLogOutput(method string) bool {
	return strings.HasPrefix(method, "Print") || strings.HasPrefix(method, "Fatal") ||
		strings.HasPrefix(method, "Panic") || method == "Output"
}
