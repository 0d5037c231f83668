// Package durabletest unit-tests orchestrations without storage: it runs
// an orchestrator in process on the real replay core of taskhub/durable,
// with real or mocked activities and sub-orchestrations, on a virtual
// clock, and checks that the history it produced replays
// deterministically.
//
//	func TestOrchestrator(t *testing.T) {
//		tr := durabletest.New(hello.Activity) // the code the orchestrator calls
//		greet := durabletest.OnActivity(tr, hello.Activity, func(_ context.Context, city string) (string, error) {
//			return "Hi " + city, nil // optional: a mock instead of the real activity
//		})
//		res, err := durabletest.Run(context.Background(), tr, orchestrator.Orchestrator, nil)
//		if err != nil {
//			t.Fatal(err) // failed, stuck, or not deterministic
//		}
//		// res.Output is the typed output; res.History the history the
//		// engine would have written; greet.Calls() counts the calls.
//	}
//
// # What runs
//
// The orchestration under test and its sub-orchestrations run as instances
// of one run, each with its own history (Instance.Children). Activities
// run one at a time, as soon as they are scheduled (in the order of their
// sequence numbers); an
// activity name that is neither given to New nor mocked fails its task as
// the engine fails it (NotRegisteredError, non-retriable). Errors of
// activities and orchestrators become failure details exactly as in the
// engine, so the orchestrator sees the same *durable.TaskFailedError.
//
// # Virtual time
//
// The clock starts at DefaultStartTime (or StartAt) and stands still while
// code runs. When nothing can run, it jumps to the next thing due: a
// durable timer, a mock's result (ActivityMock.Takes), a callback
// registered with After, an event raised with RaiseEventAfter. A retry
// policy waiting days between attempts, or a 72-hour event timeout, takes
// no real time. Result.Elapsed says how much virtual time passed.
//
// A call made with durable.WithTimeout races a durable timer on this clock,
// so a mock that Takes longer than the timeout times out deterministically
// (its late result is recorded and ignored, as in the engine). An activity
// called with a timeout gets its deadline as the engine's worker gives it:
// durable.ActivityInfoFrom(ctx).Deadline is the virtual time the timer
// fires, and ctx's own deadline is the timeout away in real time, since
// the code runs in real time; a real activity that works past it is
// cancelled, and its failure is recorded as a TimeoutError.
//
// Durable entities given to New run their real code when the orchestration
// signals or calls them (durable.Context.SignalEntity, durable.CallEntity),
// one operation at a time per entity, in the order the messages arrive; a
// scheduled signal runs at its time on the virtual clock. Critical
// sections (durable.Context.LockEntities) lock as in the engine: the locks
// are taken one entity after the other in lock order, and while an entity
// is locked the requests of others wait for its release. An entity keeps
// its state for the rest of the run; entities' signals to other entities
// and the orchestrations they start run too.
//
// durable.CallHTTP runs through the built-in activity
// durable.HTTPActivityName: mock it with OnActivityName (the input decodes
// into a durable.HTTPActivityRequest; return a durable.HTTPResponse), or
// give New the real one (durablehttp.Activity()) to make real requests.
// The waits between polls of a 202 are durable timers on the virtual clock.
//
// # Outcomes
//
// Run returns the typed output, and an error that is nil only when the
// orchestration completed and its histories replay deterministically:
// *FailedError for a failed or terminated orchestration, *NotFinishedError
// for one that can never finish (naming what it waits for, such as an
// external event nobody raises) or that hit StopAfter or MaxEpisodes,
// *DeterminismError (see Check), *BlockedError for orchestrator code that
// blocks outside the durable API, *PanicError for a panicking callback, and
// ErrEntityNotRegistered for a message to an entity not given to New.
// Nothing hangs and no panic escapes.
//
// The package needs no *testing.T; MustRun is a shorthand for tests.
package durabletest
