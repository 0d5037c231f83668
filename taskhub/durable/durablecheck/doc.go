// Package durablecheck is a go vet analyzer that reports code in Durable
// Functions orchestrators that breaks replay. An orchestrator runs again
// from the start of its history in every episode, so it must compute the
// same calls in the same order each time; everything that differs between
// runs must come from the *durable.Context or from activities.
//
// Run it with its vet tool, cmd/durable-vet:
//
//	go install github.com/go-durable/durablefunctions/cmd/durable-vet
//	go vet -vettool=$(which durable-vet) ./...
//
// # What is checked
//
// Orchestrator code is every function passed to durable.NewOrchestrator and
// every function or function literal whose first parameter is a
// *durable.Context (helpers that orchestrators call with their context),
// with the closures inside them, except function literals passed to
// durable.NewActivity: activities may do anything. The analyzer follows
// static calls from orchestrator code into functions and methods of the
// same package and reports what it finds there with the call path
// ("in load, called from orchestrator "Greet" via Greet → load"). Calls into
// other packages are not followed, and neither are calls through function
// values or interfaces. The non-test files of taskhub/durable and the
// packages under it are not checked: they implement the replay-safe
// primitives.
//
// In orchestrator code it reports:
//
//   - time.Now, time.Since, time.Until: use ctx.CurrentTime().
//   - time.Sleep: use ctx.Sleep(d). time.After, time.Tick, time.NewTimer,
//     time.NewTicker, time.AfterFunc: use ctx.CreateTimer or ctx.Sleep.
//   - the package-level functions of math/rand and math/rand/v2 (not the
//     constructors rand.New, rand.NewSource, rand.NewPCG, rand.NewChaCha8,
//     rand.NewZipf: a generator seeded from the input is deterministic), and
//     everything of crypto/rand: use ctx.NewGUID() or an activity.
//   - go statements; select statements; channel sends, receives and ranges
//     over channels: use tasks with durable.WhenAll and durable.WhenAny, or
//     external events.
//   - ranges over maps, and over maps.Keys, maps.Values and maps.All: Go
//     randomizes their order, so every such loop is reported, not only those
//     that schedule work (an append, a first match or a log line depends on
//     the order just as much); range over slices.Sorted(maps.Keys(m))
//     instead. Left alone are the loops whose order cannot matter: those
//     that bind neither key nor value, and those whose body only stores
//     into maps (m2[k] = v) or deletes from them, calling nothing but
//     builtins and conversions.
//   - I/O: the functions of os (file system, environment such as os.Getenv,
//     process identity; not the error predicates os.IsNotExist and the
//     like), os.Stdin, os.Stdout, os.Stderr and os.Args, methods of
//     *os.File; os/exec, os/signal, io/ioutil (not NopCloser and ReadAll),
//     syscall; net (not the parsers and formatters such as net.ParseIP and
//     net.JoinHostPort) and methods of its connections, listeners, dialers
//     and resolvers; net/http's client and server functions,
//     http.DefaultClient and methods of http.Client, http.Transport,
//     http.RoundTripper and http.Server (not http.NewRequest,
//     http.StatusText and other pure helpers); database/sql. Do I/O in an
//     activity.
//   - output: fmt.Print, fmt.Printf, fmt.Println (and fmt.Scan*), the
//     writing functions of log and methods of *log.Logger, the
//     package-level functions of log/slog (slog.Info, slog.Default, ...),
//     and the print and println builtins: log with ctx.Logger(), which
//     stays silent during replay.
//
// # Silencing a finding
//
// A comment that starts with //durable:nondeterministic-ok (a reason may
// follow) silences what is reported on its line; alone on a line it also
// covers the next line. On the line where a function starts, or in its doc
// comment, it silences the whole function, and on a call it stops the
// analyzer from following that call:
//
//	start := time.Now() //durable:nondeterministic-ok measured for a log line only
//
//	//durable:nondeterministic-ok this test orchestrator is non-deterministic on purpose
//	func flaky(ctx *durable.Context, _ any) (string, error) { ... }
package durablecheck
