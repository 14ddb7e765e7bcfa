package pipes

import (
	"errors"
	"testing"
)

// Ending a watch is not losing the connection: an error that comes after
// stop keeps its own meaning. (nats.go closes the status channel when the
// listener is removed; the watch took that for a loss, and a sender's
// "pipe full" came out as "lost the connection to the satellite".)
func TestEndingAWatchIsNotALostConnection(t *testing.T) {
	s := newSatellite(t)
	c := s.client()
	ctx := testCtx(t)
	own := errors.New("the item's own error")
	for i := range 2000 {
		_, explain, stop := c.watch(ctx, func() {})
		stop()
		if err := explain(own); err != own {
			t.Fatalf("round %d: after stop, explain(%v) = %v", i, own, err)
		}
	}

	// A connection that does close is still a loss.
	wctx, explain, stop := c.watch(ctx, func() {})
	defer stop()
	c.nc.Close()
	<-wctx.Done()
	if err := explain(own); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("after the connection closed: %v, want ErrDisconnected", err)
	}
}
