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
)

// PipeInfo describes a pipe that keeps items.
type PipeInfo struct {
	Name      string
	Items     int    // kept items
	Bytes     uint64 // bytes the satellite stores for them, framing included
	Receivers int    // receivers attached now
}

// rollWindow is how long List and Attached collect answers to a roll call.
const rollWindow = 100 * time.Millisecond

// List returns the pipes that keep items, by name.
func (c *Client) List(ctx context.Context) ([]PipeInfo, error) {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, err
	}
	var out []PipeInfo
	lister := js.ListStreams(ctx, jetstream.WithStreamListSubject(subjectRoot+".*."+kindHead+".*"))
	for info := range lister.Info() {
		if !strings.HasPrefix(info.Config.Name, streamPrefix) {
			continue
		}
		name, ok := info.Config.Metadata[metaName]
		if !ok {
			continue
		}
		s := newSubjects(name)
		st, err := js.Stream(ctx, s.stream)
		if err != nil {
			return nil, err
		}
		full, err := st.Info(ctx, jetstream.WithSubjectFilter(s.headAll()))
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

// count holds a roll call and counts the answers that come within rollWindow.
func (c *Client) count(ctx context.Context, s subjects) (int, error) {
	inbox := c.nc.NewRespInbox()
	seen := map[string]bool{}
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest(s.roll(), inbox, nil); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(rollWindow)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if errors.Is(err, nats.ErrTimeout) {
			return len(seen), nil
		}
		if errors.Is(err, nats.ErrNoResponders) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		if m.Header.Get("Status") == "503" {
			return 0, nil
		}
		if cm, ok := parseCtl(m.Data); ok && cm.kind == ctlJoin {
			seen[cm.rid] = true
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
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
	js, err := jetstream.New(c.nc)
	if err != nil {
		return 0, err
	}
	st, err := js.Stream(ctx, s.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(s.headAll()))
	if err != nil {
		return 0, err
	}
	if err := js.DeleteStream(ctx, s.stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, fmt.Errorf("removing pipe %q: %w", name, err)
	}
	return len(info.State.Subjects), nil
}
