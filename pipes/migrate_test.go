package pipes

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/skypipe/skypipe/internal/wire"
)

// oldItem stores an item the way skypipe did in the old layout, in a
// stream of the pipe's own: a head marker, then its data in frames split
// at cuts, then its end.
func oldItem(t *testing.T, ctx context.Context, js jetstream.JetStream, name, item string, data []byte, cuts ...int) {
	t.Helper()
	old := wire.NewSubjects(name).Old()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        old.Stream,
		Subjects:    []string{old.HeadAll(), old.KeptAll()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		AllowDirect: true,
		Metadata:    map[string]string{wire.MetaName: name},
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, old.Head(item), wire.Seal(make([]byte, wire.HeaderLen), 0, 0)); err != nil {
		t.Fatal(err)
	}
	for i, from := range append([]int{0}, cuts...) {
		to := len(data)
		if i < len(cuts) {
			to = cuts[i]
		}
		buf := append(make([]byte, wire.HeaderLen), data[from:to]...)
		if _, err := js.Publish(ctx, old.Kept(item), wire.Seal(buf, 0, uint64(from))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, old.Kept(item), wire.EndFrame(0, uint64(len(data)))); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateMovesOldStreamsInOrderOnce: items kept in the old layout (a
// stream per pipe) are invisible to receivers until Migrate moves them;
// then each pipe's items come out whole, in their order, once each, even
// though an earlier run had copied part of one before it was cut short;
// the old streams are gone, and a second run finds nothing to move.
func TestMigrateMovesOldStreamsInOrderOnce(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	c := sat.client()
	js := c.js.JS
	jobs := [][]byte{[]byte("alpha\n"), []byte("beta\n"), payload(3*chunkSize+17, 1)}
	oldItem(t, ctx, js, "jobs", "A1", jobs[0], 3)
	oldItem(t, ctx, js, "other", "C1", []byte("gamma\n"))
	oldItem(t, ctx, js, "jobs", "B1", jobs[1])
	oldItem(t, ctx, js, "jobs", "D1", jobs[2], chunkSize, 2*chunkSize, 3*chunkSize)

	olds, err := c.OldPipes(ctx)
	if err != nil || !slices.Equal(olds, []string{"jobs", "other"}) {
		t.Fatalf("OldPipes before: %q, %v", olds, err)
	}
	if n, err := keptItems(ctx, c, "jobs"); err != nil || n != 0 {
		t.Fatalf("List saw %d old items (%v): receivers read only the shared stream", n, err)
	}
	// What a run cut short left: the start of item A1 in the shared stream.
	s := wire.NewSubjects("jobs")
	if err := c.ensureStream(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, s.Head("A1"), wire.Seal(make([]byte, wire.HeaderLen), 0, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, s.Kept("A1"), wire.Seal(append(make([]byte, wire.HeaderLen), "alp"...), 0, 0)); err != nil {
		t.Fatal(err)
	}

	res, err := c.Migrate(ctx)
	if err != nil || res != (MigrateResult{Pipes: 2, Items: 4}) {
		t.Fatalf("Migrate: %+v, %v; want 2 pipes, 4 items", res, err)
	}
	for _, name := range []string{"jobs", "other"} {
		if _, err := js.Stream(ctx, wire.NewSubjects(name).Old().Stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("the old stream of %q after Migrate: %v", name, err)
		}
	}
	sat.kept(ctx, "jobs", 3)
	for i, want := range jobs {
		var out bytes.Buffer
		res, err := c.Receive(ctx, "jobs", &out, ReceiveOptions{})
		if err != nil || res.Items != 1 || !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("item %d of jobs: %d bytes (%q...), %+v, %v", i, out.Len(), out.Bytes()[:min(out.Len(), 8)], res, err)
		}
	}
	var out bytes.Buffer
	if _, err := c.Receive(ctx, "other", &out, ReceiveOptions{}); err != nil || out.String() != "gamma\n" {
		t.Fatalf("other: %q, %v", out.String(), err)
	}
	sat.kept(ctx, "jobs", 0)
	if res, err := c.Migrate(ctx); err != nil || res != (MigrateResult{}) {
		t.Fatalf("second Migrate: %+v, %v; want nothing moved", res, err)
	}
}

// TestMigrateStopsAtAnOldSender: an old stream that holds more frames once
// they are copied (a skypipe of the old layout still sends to it) is not
// deleted, and Migrate says why; run again once it stopped, it moves the
// lot without doubling what it copied before.
func TestMigrateStopsAtAnOldSender(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	c := sat.client()
	js := c.js.JS
	oldItem(t, ctx, js, "q", "A1", []byte("one\n"))
	hold := true
	c.cfg.migrateCopied = func(name string) {
		if hold {
			hold = false
			oldItem(t, ctx, js, name, "B1", []byte("two\n"))
		}
	}
	if _, err := c.Migrate(ctx); !errors.Is(err, ErrOldSender) {
		t.Fatalf("Migrate with an item added meanwhile: %v, want ErrOldSender", err)
	}
	if _, err := js.Stream(ctx, wire.NewSubjects("q").Old().Stream); err != nil {
		t.Fatalf("the old stream was deleted: %v", err)
	}
	if res, err := c.Migrate(ctx); err != nil || res.Items != 2 {
		t.Fatalf("Migrate again: %+v, %v", res, err)
	}
	for _, want := range []string{"one\n", "two\n"} {
		var out bytes.Buffer
		if _, err := c.Receive(ctx, "q", &out, ReceiveOptions{}); err != nil || out.String() != want {
			t.Fatalf("got %q, %v; want %q", out.String(), err, want)
		}
	}
	sat.kept(ctx, "q", 0)
}
