// Package replaytest tests orchestrator code changes against histories
// exported from production, before deploying them.
//
// An orchestration that is running when new code is deployed replays its
// history with the new code. If the new code no longer makes the calls the
// history records, in the same order, the instance fails with a
// durable.NonDeterminismError (or, worse, hands a recorded result to a
// different call). This package replays saved histories against the code
// in a unit test, with no storage and without running any activity.
//
// # Saving an export
//
// Save the status of an instance, with its history, inputs and results,
// from the management API:
//
//	curl -o testdata/order-42.json \
//	  'https://<app>/api/durabletask/instances/order-42?showHistory=true&showHistoryOutput=true&code=<function key>'
//
// (showInput defaults to true and must not be turned off; the route needs
// a function key, as DurableTaskAPI/function.json says.) Choose instances
// that take the paths the change touches, and ones still running: those
// are the instances the deployment will replay.
//
// # Checking it
//
// Register the code as the app does and check every saved export:
//
//	func TestReplayProductionHistories(t *testing.T) {
//		reg := durable.NewRegistry()
//		if err := reg.Add(orders.Checkout, orders.Charge, orders.Notify); err != nil {
//			t.Fatal(err)
//		}
//		replaytest.CheckFiles(t, reg, "testdata/*.json")
//	}
//
// or one at a time with Check or CheckFile, which return a
// *DivergenceError naming the sequence number of the call (TaskID), the
// historyEvents entry, what history records and what the code did:
//
//	replaytest: orchestrator "HelloCities" (instance "hello-1") diverges from its history
//	at task 1, historyEvents[2] (call mismatch): history records TaskScheduled "Hello" (task 1)
//	with input "Seattle", but the code produced TaskScheduled "Greet" (task 1) with input "Seattle"
//
// # What is compared
//
// The code is run episode by episode on the recorded events, in the
// recorded order: results and failures of activities and sub-orchestrations
// (matched to calls by TaskScheduledId), timer firings (by TimerId),
// external events, and termination, suspension and resumption. Check
// reports, as the first divergence found:
//
//   - CallMismatch: at a sequence number with a recorded result, the code
//     calls another activity or sub-orchestrator, or makes another kind of
//     call (a timer instead of an activity, an activity instead of a
//     sub-orchestration, ...).
//   - InputMismatch: the same call with another input (compared as JSON).
//     The runtime itself would not notice, and would hand the code the
//     result recorded for the other input; IgnoreInputs turns this off.
//   - MissingCall: history records a result for a call, or a TimerCreated
//     entry, that the code has not made by then: it dropped the call,
//     returned early, or waits for something else.
//   - OutcomeMismatch: history records the completion and the code has not
//     completed at that point, or completed with another status, or (for
//     Completed) with another output, compared as JSON; IgnoreOutput turns
//     the output comparison off.
//   - Unstable: the code disagrees with itself. After the forward run, the
//     history it produced is replayed from scratch by a fresh executor, as
//     after a host restart, with IsReplaying true; the executor's
//     durable.NonDeterminismError is wrapped. This catches code that
//     branches on IsReplaying, and sometimes code that depends on map
//     order, time.Now or random numbers.
//
// Calls the code makes that history has no result for are accepted: they
// are new, or were still running when the export was saved. The code may
// then wait for them only if the export's instance was not completed, so a
// still-running export passes against code that adds calls after the
// recorded ones, while a completed export fails with OutcomeMismatch.
//
// # Limits
//
// The export folds scheduling events and episode boundaries away, so some
// things cannot be checked:
//
//   - A call with no recorded result (running when exported, or a
//     fire-and-forget call whose result arrived after completion) is not
//     compared at all, and neither are EventSent entries.
//   - Timers are compared by kind and position only: their fire times are
//     not, and the TimerCreated entries, which carry no id, are matched to
//     the code's timers by order.
//   - Context.CurrentTime is reconstructed from the recorded times: an
//     episode that scheduled something the export records (ScheduledTime,
//     a TimerCreated or ExecutionCompleted timestamp) runs at exactly its
//     recorded time, so NewGUID and time-derived inputs match; other
//     episodes run at the next known episode time (never before the
//     triggering event's own timestamp).
//   - Context.ExecutionID and ParentInstanceID are empty (the export does
//     not carry them), and so is the execution part of default
//     sub-orchestration instance IDs. Sub-orchestrations are not replayed
//     with their parent: save and check their exports separately.
//   - Failure details of a Failed outcome, termination reasons and custom
//     status are not compared.
//   - The export holds only the current execution: a ContinueAsNew chain is
//     checked one execution at a time.
package replaytest
