package pipes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/skypipe/skypipe/internal/wire"
)

// PipeInfo describes a pipe that keeps items.
type PipeInfo struct {
	Name      string
	Items     int    // kept items
	Bytes     uint64 // bytes the satellite stores for them, framing included
	Receivers int    // receivers attached now
}

// rollWindow is how long List and Attached collect answers to a census.
const rollWindow = 100 * time.Millisecond

// List returns the pipes that keep items, by name.
func (c *Client) List(ctx context.Context) ([]PipeInfo, error) {
	js, err := c.jetstream()
	if err != nil {
		return nil, err
	}
	var out []PipeInfo
	lister := js.JS.ListStreams(ctx, jetstream.WithStreamListSubject(wire.Root+".*."+wire.KindHead+".*"))
	for info := range lister.Info() {
		if !strings.HasPrefix(info.Config.Name, wire.StreamPrefix) {
			continue
		}
		name, ok := info.Config.Metadata[wire.MetaName]
		if !ok {
			continue
		}
		s := wire.NewSubjects(name)
		st, err := js.JS.Stream(ctx, s.Stream)
		if err != nil {
			return nil, err
		}
		full, err := st.Info(ctx, jetstream.WithSubjectFilter(s.HeadAll()))
		if err != nil {
			return nil, err
		}
		if len(full.State.Subjects) == 0 {
			continue
		}
		n, err := c.count(ctx, s)
		if err != nil {
			return nil, err
		}
		out = append(out, PipeInfo{Name: name, Items: len(full.State.Subjects), Bytes: full.State.Bytes, Receivers: n})
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("listing pipes: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Attached returns how many receivers are attached to a pipe now.
func (c *Client) Attached(ctx context.Context, name string) (int, error) {
	s, err := checkName(name)
	if err != nil {
		return 0, err
	}
	return c.count(ctx, s)
}

// count asks every receiver attached to answer, takers and listeners, and
// counts the answers that come within rollWindow.
func (c *Client) count(ctx context.Context, s wire.Subjects) (int, error) {
	inbox := c.nc.NewRespInbox()
	seen := map[string]bool{}
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest(s.Who(), inbox, nil); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, rollWindow)
	defer cancel()
	for {
		m, err := sub.NextMsgWithContext(ctx)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return len(seen), nil
		case errors.Is(err, nats.ErrNoResponders):
			return 0, nil
		case err != nil:
			return 0, err
		case m.Header.Get("Status") == "503":
			return 0, nil
		}
		if cm, ok := wire.ParseCtl(m.Data); ok && cm.Kind == wire.Join {
			seen[cm.RID] = true
		}
	}
}

// Remove drops every item a pipe keeps and returns how many there were.
// Receivers reading one of them fail; senders storing one fail.
func (c *Client) Remove(ctx context.Context, name string) (int, error) {
	s, err := checkName(name)
	if err != nil {
		return 0, err
	}
	js, err := c.jetstream()
	if err != nil {
		return 0, err
	}
	st, err := js.JS.Stream(ctx, s.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(s.HeadAll()))
	if err != nil {
		return 0, err
	}
	if err := js.JS.DeleteStream(ctx, s.Stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, fmt.Errorf("removing pipe %q: %w", name, err)
	}
	return len(info.State.Subjects), nil
}

// ErrNoItem: the pipe keeps no item of that id.
var ErrNoItem = errors.New("no such kept item")

// RemoveItem drops one kept item of a pipe, whole or broken, and leaves
// the others. A receiver reading it fails.
func (c *Client) RemoveItem(ctx context.Context, name, item string) error {
	s, err := checkName(name)
	if err != nil {
		return err
	}
	if item == "" || strings.ContainsAny(item, ".*> \t\r\n") {
		return fmt.Errorf("%w: %q is not an item id", ErrNoItem, item)
	}
	js, err := c.jetstream()
	if err != nil {
		return err
	}
	n, err := js.Purge(ctx, s.Stream, s.Claim(item))
	if err != nil {
		return fmt.Errorf("removing item %s of pipe %q: %w", item, name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: pipe %q keeps no item %s", ErrNoItem, name, item)
	}
	return nil
}
