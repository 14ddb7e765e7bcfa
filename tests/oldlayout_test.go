package tests

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/skypipe/skypipe/internal/wire"
)

// cmdOldStore keeps items in a pipe the way skypipe did before the shared
// stream, in a stream of the pipe's own (wire.Subjects.Old), as a
// satellite upgraded from then holds them:
//
//	oldstore PIPE LINE...
//
// Each LINE becomes one whole item, LINE and a newline: a head marker,
// one frame of data, an end frame.
func cmdOldStore(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: oldstore PIPE LINE...")
	}
	nc := conn(ts)
	defer nc.Close()
	js, err := jetstream.New(nc)
	ts.Check(err)
	ctx, cancel := context.WithTimeout(context.Background(), askLimit)
	defer cancel()
	old := wire.NewSubjects(args[0]).Old()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        old.Stream,
		Subjects:    []string{old.HeadAll(), old.KeptAll()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		AllowDirect: true,
		Metadata:    map[string]string{wire.MetaName: args[0]},
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		ts.Fatalf("making the old stream of %q: %v", args[0], err)
	}
	for _, line := range args[1:] {
		item := nuid.Next()
		data := append(make([]byte, wire.HeaderLen), line+"\n"...)
		for _, m := range []struct {
			subject string
			frame   []byte
		}{
			{old.Head(item), wire.Seal(make([]byte, wire.HeaderLen), 0, 0)},
			{old.Kept(item), wire.Seal(data, wire.FlagLineStart, 0)},
			{old.Kept(item), wire.EndFrame(0, uint64(len(line)+1))},
		} {
			if _, err := js.Publish(ctx, m.subject, m.frame); err != nil {
				ts.Fatalf("storing %q in the old layout: %v", line, err)
			}
		}
	}
}
