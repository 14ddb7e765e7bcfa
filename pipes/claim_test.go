package pipes

import (
	"strings"
	"testing"
)

// TestAClaimWhoseCreateLandedAfterItsTimeoutIsTaken: a claim's consumer
// create that timed out on a loaded satellite but was made there is sent
// again; the server answers "consumer already exists" (it stamps its own
// metadata on a consumer, so the same config is not the same), and the
// claim is ours all the same (CI: a drain of 4 GB failed with "taking a
// kept item: consumer already exists").
func TestAClaimWhoseCreateLandedAfterItsTimeoutIsTaken(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	c := sat.client()
	if _, err := c.Send(ctx, "q", strings.NewReader("kept\n")); err != nil {
		t.Fatal(err)
	}
	s, js := pipeAPI(t, c, "q")
	cl := newClaimer(c, js, s, "taker", func(event) bool { return true })
	heads, _, err := cl.heads(ctx, 0)
	if err != nil || len(heads) != 1 {
		t.Fatalf("heads: %v, %v; want the one kept item", heads, err)
	}
	item := heads[0].Subject[strings.LastIndexByte(heads[0].Subject, '.')+1:]
	for try := range 2 {
		claim, res, err := cl.create(ctx, item, "taker-1")
		if err != nil || res != claimTaken || claim == nil || claim.stored == 0 {
			t.Fatalf("try %d: %+v, result %d, %v; want the item taken", try, claim, res, err)
		}
	}
	cl.deleteConsumer(ctx, "taker-1")
}
