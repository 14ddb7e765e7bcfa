package pipes

// Moving the items kept in the old layout, a stream per pipe, into the
// shared stream (see doc.go, "The store").

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/skypipe/skypipe/internal/jsapi"
	"github.com/skypipe/skypipe/internal/wire"
)

// migrateBatch is how many stored frames Migrate reads at once, and how
// many it has in flight to the shared stream.
const migrateBatch = 256

// oldStream is a stream of the old layout: one pipe's kept items.
type oldStream struct {
	s    wire.Subjects // the pipe's subjects in the old layout
	msgs uint64
}

// oldStreams lists the streams of the old layout on the satellite.
func (c *Client) oldStreams(ctx context.Context) ([]oldStream, error) {
	js, err := c.jetstream()
	if err != nil {
		return nil, err
	}
	var out []oldStream
	lister := js.JS.ListStreams(ctx, jetstream.WithStreamListSubject(wire.OldHeadsOfAll))
	for info := range lister.Info() {
		name, ok := info.Config.Metadata[wire.MetaName]
		if !ok || !strings.HasPrefix(info.Config.Name, wire.StreamPrefix) || ValidateName(name) != nil {
			continue
		}
		s := wire.NewSubjects(name).Old()
		if s.Stream != info.Config.Name {
			continue
		}
		out = append(out, oldStream{s: s, msgs: info.State.Msgs})
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("looking for pipes of the old layout: %w", err)
	}
	return out, nil
}

// MigrateResult says what Migrate moved.
type MigrateResult struct {
	Pipes int // old streams moved and deleted
	Items int // kept items they held
}

// ErrOldSender: an item was added to a stream of the old layout while it
// was being moved, so a skypipe older than this one still sends to it.
var ErrOldSender = errors.New("a skypipe of the old layout still sends")

// Migrate moves the items kept in streams of the old layout (one stream
// per pipe, before the shared stream) into the shared stream, pipe by
// pipe, each pipe's items in their order, and deletes each old stream
// once its items are in the shared one. Receivers read only the shared
// stream, so until then they do not see those items.
//
// Run it while nothing sends to those pipes: 'skypipe serve' runs it on its
// store before it lets any client in. An item a sender keeps meanwhile
// would go before the old ones. Migrate may be run again after it failed
// part way (a full store, a lost connection): it first drops whatever it
// had copied of a pipe's items, so nothing is doubled, and an old stream is
// deleted only after all its items were stored again.
func (c *Client) Migrate(ctx context.Context) (MigrateResult, error) {
	var res MigrateResult
	olds, err := c.oldStreams(ctx)
	if err != nil || len(olds) == 0 {
		return res, err
	}
	for _, o := range olds {
		n, err := c.migrateStream(ctx, o)
		if err != nil {
			return res, fmt.Errorf("moving the kept items of pipe %q to the shared stream: %w", o.s.Name, err)
		}
		res.Pipes++
		res.Items += n
	}
	return res, nil
}

// migrateStream moves one old stream's frames, oldest first, and returns
// how many items they were.
func (c *Client) migrateStream(ctx context.Context, o oldStream) (int, error) {
	js, err := c.jetstream()
	if err != nil {
		return 0, err
	}
	s := wire.NewSubjects(o.s.Name)
	if o.msgs > 0 {
		if err := c.ensureStream(ctx, s); err != nil {
			return 0, err
		}
		// A run cut short copied some of these items already.
		if _, err := js.Purge(ctx, s.Stream, s.Stored()); err != nil {
			return 0, fmt.Errorf("dropping an earlier, partial copy: %w", err)
		}
	}
	l := js.NewLookup()
	defer l.Close()
	var (
		items  = map[string]bool{}
		copied uint64
		acks   []jetstream.PubAckFuture
	)
	// settle waits until at most keep copies are unconfirmed, each for
	// at most one call's time (T.Call).
	settle := func(keep int) error {
		for len(acks) > keep {
			wait := time.NewTimer(js.T.Call)
			select {
			case <-acks[0].Ok():
			case err := <-acks[0].Err():
				wait.Stop()
				if jsapi.Full(err) {
					return storeError(s, err)
				}
				return err
			case <-wait.C:
				return fmt.Errorf("%w: the satellite did not confirm a copied frame within %v", ErrNotStored, js.T.Call)
			case <-ctx.Done():
				wait.Stop()
				return ctx.Err()
			}
			wait.Stop()
			acks = acks[1:]
		}
		return nil
	}
	for from, more := uint64(0), true; more; {
		var batch []jsapi.Head
		err := js.Retry(ctx, func(ctx context.Context) (err error) {
			batch, more, err = l.Next(ctx, o.s.Stream, o.s.Stored(), from, migrateBatch)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("reading the old stream: %w", err)
		}
		for _, m := range batch {
			subject, item, err := moved(o.s, s, m.Subject)
			if err != nil {
				return 0, err
			}
			items[item] = true
			a, err := js.JS.PublishAsync(subject, m.Data, jetstream.WithExpectStream(s.Stream))
			if err != nil {
				return 0, err
			}
			acks = append(acks, a)
			if err := settle(migrateBatch); err != nil {
				return 0, err
			}
			copied++
			from = m.Seq + 1
		}
	}
	if err := settle(0); err != nil {
		return 0, err
	}
	if c.cfg.migrateCopied != nil {
		c.cfg.migrateCopied(o.s.Name)
	}
	st, err := js.JS.Stream(ctx, o.s.Stream)
	if err != nil {
		return 0, err
	}
	if st.CachedInfo().State.Msgs != copied {
		return 0, fmt.Errorf("%w to it: it holds %d frames, %d were moved", ErrOldSender, st.CachedInfo().State.Msgs, copied)
	}
	if err := js.JS.DeleteStream(ctx, o.s.Stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, fmt.Errorf("deleting the old stream: %w", err)
	}
	return len(items), nil
}

// moved returns the subject in the shared stream of a frame stored on
// subject in an old stream, and its item.
func moved(old, s wire.Subjects, subject string) (to, item string, err error) {
	if item, ok := strings.CutPrefix(subject, old.Head("")); ok && wire.ValidItem(item) {
		return s.Head(item), item, nil
	}
	if item, ok := strings.CutPrefix(subject, old.Kept("")); ok && wire.ValidItem(item) {
		return s.Kept(item), item, nil
	}
	return "", "", fmt.Errorf("a frame on %q, not a subject of pipe %q", subject, old.Name)
}
