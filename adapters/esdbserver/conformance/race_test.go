package conformance

import (
	"sync"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

// Twenty appends at the same expected revision: exactly one wins, the others
// get WEV, and the stream grows by exactly one event.
func TestConcurrentAppendsSameExpectedRevision(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	for round := 0; round < 3; round++ {
		s := streamName(t, "")
		seed := jsonEvent("Seed", 0)
		mustAppend(t, c, s, esdb.NoStream{}, seed)
		const writers = 20
		evs := jsonEvents("Contender", writers)
		errs := make([]error, writers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < writers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				_, errs[i] = c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)}, evs[i])
			}(i)
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch code, _ := errCode(err); {
			case err == nil:
				if winner >= 0 {
					t.Errorf("round %d: writers %d and %d both succeeded", round, winner, i)
				}
				winner = i
			case code != esdb.ErrorCodeWrongExpectedVersion:
				t.Errorf("round %d: writer %d: got %v, want success or ErrorCodeWrongExpectedVersion", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer succeeded", round)
		}
		want := []uuid.UUID{seed.EventID, evs[winner].EventID}
		if diff := cmp.Diff(want, eventIDs(mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount))); diff != "" {
			t.Errorf("round %d: stream (-want +got):\n%s", round, diff)
		}
	}
}
