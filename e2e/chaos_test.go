package e2e

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-durable/durablefunctions/internal/azuritetest"
)

// TestRepeatedKillsLoseNothing starts sample orchestrations while killing
// the app with SIGKILL at random moments, several times over. Every
// instance whose start was acknowledged must complete with the right output
// and a history without duplicated events.
func TestRepeatedKillsLoseNothing(t *testing.T) {
	hub := azuritetest.HubName(t)
	env := appEnv(t, hub, "DURABLE_MESSAGE_VISIBILITY=2s", "DURABLE_LEASE_INTERVAL=3s")
	bin := binary(t, ".")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var started []string
	var mu sync.Mutex
	for round := 0; round < 4; round++ {
		p := startApp(t, bin, env...)
		waitReady(t, p)
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Post(p.base+"/api/orchestrators/Orchestrator", "application/json", nil)
				if err != nil {
					return // killed mid-request: the caller never learnt an ID
				}
				b := readAll(t, resp)
				if resp.StatusCode == http.StatusAccepted {
					mu.Lock()
					started = append(started, decode[checkStatus](t, b).ID)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond) // the random kill point is the test's input
		p.kill()
		wg.Wait()
	}
	if len(started) == 0 {
		t.Fatal("no start was acknowledged before the kills")
	}
	p := startApp(t, bin, env...)
	for _, id := range started {
		final := pollStatus(t, p.base+"/api/durabletask/instances/"+id, 90*time.Second)
		st := decode[statusPayload](t, final.body)
		if st.RuntimeStatus != "Completed" || string(st.Output) != wantOutput {
			t.Errorf("instance %s: %s %s", id, st.RuntimeStatus, st.Output)
		}
	}
	checkInvariants(t, hub, started, func(string) string { return wantOutput })
	t.Logf("%d acknowledged starts across 4 kills, all completed once", len(started))
}
