package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

// entityState reads an entity's state over the HTTP API: its JSON text, or
// "" while it does not exist.
func entityState(t *testing.T, base, name, key string) string {
	t.Helper()
	r := do(t, http.MethodGet, base+"/api/durabletask/entities/"+name+"/"+key, "")
	switch r.status {
	case http.StatusOK:
		return string(r.body)
	case http.StatusNotFound:
		return ""
	}
	t.Fatalf("GET entity %s/%s: %d %s", name, key, r.status, r.body)
	return ""
}

// startNamed starts orchestrator name as instance id with input through
// the management API.
func startNamed(t *testing.T, base, name, id string, input any) {
	t.Helper()
	b, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, http.MethodPost, base+"/api/durabletask/orchestrators/"+name+"/"+id, string(b))
	if r.status != http.StatusAccepted {
		t.Fatalf("start %s %s: %d %s", name, id, r.status, r.body)
	}
}

// waitCompleted waits for each instance to complete and returns its output.
func waitCompleted(t *testing.T, base string, ids []string, timeout time.Duration) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, id := range ids {
		st := decode[statusPayload](t, pollStatus(t, base+"/api/durabletask/instances/"+id, timeout).body)
		if st.RuntimeStatus != "Completed" {
			t.Fatalf("%s: %s %s", id, st.RuntimeStatus, st.Output)
		}
		out[id] = string(st.Output)
	}
	return out
}

// TestEntityCounterExactUnderKill sends 1,000 add signals to one Counter at
// once, 500 over HTTP from 16 clients and 500 from 50 CounterAdder
// orchestrations (10 each, with a call between every five that must see
// the orchestration's own signals), kills the app with SIGKILL while they
// are being applied, and restarts it: the counter ends at exactly 1,000,
// every orchestration completes, and the invariants hold for all of them
// and for the entity.
func TestEntityCounterExactUnderKill(t *testing.T) {
	hub := azuritetest.HubName(t)
	// Each add takes 12 ms, so that the kill lands while the adds are
	// being applied.
	env := appEnv(t, hub, "CRASHTEST_DIR="+t.TempDir(), "DURABLE_MESSAGE_VISIBILITY=2s", "DURABLE_LEASE_INTERVAL=3s",
		"COUNTER_ADD_DELAY=12ms")
	bin := binary(t, "./e2e/testapp")
	p1 := startApp(t, bin, env...)
	waitReady(t, p1)
	const key, httpSignals, adders, perAdder = "kill", 500, 50, 10

	var ids []string
	for i := range adders {
		ids = append(ids, "adder-"+strconv.Itoa(i))
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, id := range ids {
			startNamed(t, p1.base, "CounterAdder", id, map[string]any{"key": key, "signals": perAdder})
		}
	}()
	sent := make(chan struct{}, httpSignals)
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < httpSignals; i += 16 {
				if r := do(t, http.MethodPost, p1.base+"/api/durabletask/entities/Counter/"+key+"?op=add", "1"); r.status != http.StatusAccepted {
					t.Errorf("signal %d: %d %s", i, r.status, r.body)
					return
				}
				sent <- struct{}{}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Every signal is accepted and every orchestration started: kill the
	// app while they are applied.
	atKill := entityState(t, p1.base, "Counter", key)
	p1.kill()
	t.Logf("killed the app with the counter at %q of %d", atKill, httpSignals+adders*perAdder)

	p2 := startApp(t, bin, env...)
	waitReady(t, p2)
	outputs := waitCompleted(t, p2.base, ids, 120*time.Second)
	for id, out := range outputs {
		if out != strconv.Itoa(perAdder) {
			t.Errorf("%s: output %s, want %d", id, out, perAdder)
		}
	}
	want := strconv.Itoa(httpSignals + adders*perAdder)
	deadline := time.Now().Add(60 * time.Second)
	for got := entityState(t, p2.base, "Counter", key); got != want; got = entityState(t, p2.base, "Counter", key) {
		if time.Now().After(deadline) {
			t.Fatalf("counter %q, want %s", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	entity := "@counter@" + key
	checkInvariants(t, hub, append(ids, entity), func(id string) string {
		if id == entity {
			return want
		}
		return strconv.Itoa(perAdder)
	})
}

// TestEntityTransfersUnderLocksAndKill moves money between four accounts
// with 30 concurrent Transfer orchestrations, each inside a critical
// section over its two accounts, while six Audits lock all four and sum
// them; the app is killed with SIGKILL half way and restarted. Every audit
// sees the starting total, no balance goes negative, the accounts end with
// the total they started with and no lock held, and a call whose operation
// fails returns the entity's typed error to the orchestration.
func TestEntityTransfersUnderLocksAndKill(t *testing.T) {
	hub := azuritetest.HubName(t)
	env := appEnv(t, hub, "CRASHTEST_DIR="+t.TempDir(), "DURABLE_MESSAGE_VISIBILITY=2s", "DURABLE_LEASE_INTERVAL=3s")
	bin := binary(t, "./e2e/testapp")
	p1 := startApp(t, bin, env...)
	waitReady(t, p1)
	keys := []string{"a", "b", "c", "d"}
	for _, k := range keys {
		if r := do(t, http.MethodPost, p1.base+"/api/durabletask/entities/Account/"+k+"?op=deposit", "100"); r.status != http.StatusAccepted {
			t.Fatalf("deposit: %d %s", r.status, r.body)
		}
	}
	for _, k := range keys {
		deadline := time.Now().Add(30 * time.Second)
		for entityState(t, p1.base, "Account", k) != "100" {
			if time.Now().After(deadline) {
				t.Fatalf("account %s not funded", k)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var transfers, audits []string
	for i := range 30 {
		from, to := keys[i%4], keys[(i/4+i+1)%4]
		if from == to {
			to = keys[(i+2)%4]
		}
		id := fmt.Sprintf("transfer-%d", i)
		startNamed(t, p1.base, "Transfer", id, map[string]any{"from": from, "to": to, "amount": 15 + i%20})
		transfers = append(transfers, id)
		if i%5 == 0 {
			id := fmt.Sprintf("audit-%d", i)
			startNamed(t, p1.base, "Audit", id, keys)
			audits = append(audits, id)
		}
	}
	// Kill once some of the transfers are done.
	deadline := time.Now().Add(60 * time.Second)
	for done := 0; done < 5; {
		done = 0
		for _, id := range transfers {
			if r := do(t, http.MethodGet, p1.base+"/api/durabletask/instances/"+id, ""); r.status == http.StatusOK {
				done++
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d transfers done", done)
		}
	}
	p1.kill()
	p2 := startApp(t, bin, env...)
	waitReady(t, p2)
	outputs := waitCompleted(t, p2.base, append(append([]string{}, transfers...), audits...), 120*time.Second)
	moved := 0
	for _, id := range transfers {
		switch outputs[id] {
		case `"moved"`:
			moved++
		case `"short"`:
		default:
			t.Errorf("%s: output %s", id, outputs[id])
		}
	}
	for _, id := range audits {
		if outputs[id] != "400" {
			t.Errorf("%s saw a total of %s, want 400", id, outputs[id])
		}
	}
	total := 0
	states := map[string]string{}
	for _, k := range keys {
		s := entityState(t, p2.base, "Account", k)
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Errorf("account %s: balance %q", k, s)
		}
		total += n
		states["@account@"+k] = s
	}
	if total != 400 || moved == 0 {
		t.Fatalf("total %d after %d transfers moved money, want 400", total, moved)
	}

	// A failed operation comes back typed; a locking rule is enforced.
	startNamed(t, p2.base, "Overdraw", "overdraw", "a")
	var od struct {
		IsInsufficient bool   `json:"isInsufficient"`
		Type           string `json:"type"`
		Message        string `json:"message"`
		Balance        int    `json:"balance"`
		LockedRule     string `json:"lockedRule"`
	}
	outputs["overdraw"] = waitCompleted(t, p2.base, []string{"overdraw"}, 60*time.Second)["overdraw"]
	if err := json.Unmarshal([]byte(outputs["overdraw"]), &od); err != nil {
		t.Fatal(err)
	}
	if !od.IsInsufficient || od.Type != "InsufficientFunds" || od.Balance != mustAtoi(t, states["@account@a"]) || od.LockedRule == "" {
		t.Fatalf("Overdraw saw %+v (account a holds %s)", od, states["@account@a"])
	}

	ids := append(append(append([]string{}, transfers...), audits...), "overdraw")
	for id := range states {
		ids = append(ids, id)
	}
	checkInvariants(t, hub, ids, func(id string) string {
		if s, ok := states[id]; ok {
			return s
		}
		return outputs[id]
	})
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
