package pipes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/skypipe/skypipe/internal/jsapi"
	"github.com/skypipe/skypipe/internal/wire"
)

// PipeInfo describes a pipe that keeps items.
type PipeInfo struct {
	Name      string
	Items     int    // kept items
	Bytes     uint64 // bytes the satellite stores for them, framing included
	Receivers int    // receivers attached now

	// What the kept items are, as their stored frames say; the four add up
	// to Items (see ItemState).
	Whole, Partial, Broken, Sending int
	// The ids of the partial and broken items, oldest first, for
	// RemoveItem ('skypipe rm NAME --item ID').
	PartialItems, BrokenItems []string
}

// ItemState is what a kept item is, from its head marker (the offset it is
// kept from) and its last stored frame.
type ItemState uint8

const (
	// ItemWhole: kept from its first byte, and it ends with an end frame.
	ItemWhole ItemState = iota
	// ItemSending: kept from its first byte, no end yet: its sender is
	// still writing it (or vanished, and no receiver found out yet).
	ItemSending
	// ItemPartial: kept from a later byte on, because live receivers got
	// (or took) its start: whoever takes it gets only a tail. Ended or not.
	ItemPartial
	// ItemBroken: it ends with an abort frame (its sender gave up while a
	// receiver read it from the store, or a cluster lost part of it), or a
	// frame of it is damaged. No receiver takes it for whole.
	ItemBroken
)

func (s ItemState) String() string {
	switch s {
	case ItemWhole:
		return "whole"
	case ItemSending:
		return "sending"
	case ItemPartial:
		return "partial"
	case ItemBroken:
		return "broken"
	}
	return fmt.Sprintf("ItemState(%d)", uint8(s))
}

// stateOf tells an item's state from its head marker and its last stored
// frame (nil when only the head is stored). Broken counts before partial,
// partial before sending: a tail never becomes whole.
func stateOf(head, last []byte) ItemState {
	h, err := wire.Parse(head)
	if err != nil {
		return ItemBroken
	}
	end := h.End() // an end in the head: nothing else was stored
	if h.Aborted() {
		return ItemBroken
	}
	if last != nil {
		f, err := wire.Parse(last)
		if err != nil || f.Aborted() {
			return ItemBroken
		}
		end = f.End()
	}
	switch {
	case h.Offset > 0:
		return ItemPartial
	case !end:
		return ItemSending
	}
	return ItemWhole
}

// listHeadBatch is how many item heads List asks for at once: a head is a
// 16-byte marker, so a batch is a few MB at most.
const listHeadBatch = 10000

// List returns the pipes that keep items, by name, with what their items
// are. It asks the satellite a few times a pipe whatever its items: its
// stream's info, its item heads (a batched direct get, one per
// listHeadBatch items) and the last frame of each (a multi-last direct
// get, one per jsapi.MaxLasts items), and the receivers attached.
func (c *Client) List(ctx context.Context) ([]PipeInfo, error) {
	js, err := c.jetstream()
	if err != nil {
		return nil, err
	}
	l := js.NewLookup()
	defer l.Close()
	// The listing first, whole: its pages come within one request timeout,
	// which the per-pipe census below must not eat into.
	var infos []*jetstream.StreamInfo
	lister := js.JS.ListStreams(ctx, jetstream.WithStreamListSubject(wire.Root+".*."+wire.KindHead+".*"))
	for info := range lister.Info() {
		infos = append(infos, info)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("listing pipes: %w", err)
	}
	var out []PipeInfo
	var subjects []wire.Subjects
	for _, info := range infos {
		if !strings.HasPrefix(info.Config.Name, wire.StreamPrefix) {
			continue
		}
		name, ok := info.Config.Metadata[wire.MetaName]
		if !ok || info.State.Msgs == 0 {
			continue
		}
		s := wire.NewSubjects(name)
		p := PipeInfo{Name: name, Bytes: info.State.Bytes}
		if err := c.census(ctx, l, s, &p); err != nil {
			return nil, fmt.Errorf("listing pipe %q: %w", name, err)
		}
		if p.Items == 0 {
			continue
		}
		out = append(out, p)
		subjects = append(subjects, s)
	}
	receivers, err := c.count(ctx, subjects...)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Receivers = receivers[i]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// census counts a pipe's kept items by state into p: their heads, oldest
// first, then the last frame of each. An item taken between the two looks
// like one still being sent: a snapshot of a pipe in use.
func (c *Client) census(ctx context.Context, l *jsapi.Lookup, s wire.Subjects, p *PipeInfo) error {
	js, err := c.jetstream()
	if err != nil {
		return err
	}
	var heads []jsapi.Head
	for from, more := uint64(0), true; more; {
		var batch []jsapi.Head
		err := js.Retry(ctx, func(ctx context.Context) (err error) {
			batch, more, err = l.Next(ctx, s.Stream, s.HeadAll(), from, listHeadBatch)
			return err
		})
		if err != nil {
			return fmt.Errorf("looking for kept items: %w", err)
		}
		heads = append(heads, batch...)
		if len(batch) > 0 {
			from = batch[len(batch)-1].Seq + 1
		}
	}
	kept := make([]string, len(heads))
	for i, h := range heads {
		kept[i] = s.Kept(wire.LastToken(h.Subject))
	}
	var lasts map[string]jsapi.Head
	err = js.Retry(ctx, func(ctx context.Context) (err error) {
		lasts, err = l.Lasts(ctx, s.Stream, kept)
		return err
	})
	if err != nil {
		return fmt.Errorf("looking at kept items' ends: %w", err)
	}
	p.Items = len(heads)
	for i, h := range heads {
		var last []byte
		if m, ok := lasts[kept[i]]; ok {
			last = m.Data
		}
		switch stateOf(h.Data, last) {
		case ItemWhole:
			p.Whole++
		case ItemSending:
			p.Sending++
		case ItemPartial:
			p.Partial++
			p.PartialItems = append(p.PartialItems, wire.LastToken(h.Subject))
		case ItemBroken:
			p.Broken++
			p.BrokenItems = append(p.BrokenItems, wire.LastToken(h.Subject))
		}
	}
	return nil
}

// Attached returns how many receivers are attached to a pipe now.
func (c *Client) Attached(ctx context.Context, name string) (int, error) {
	s, err := checkName(name)
	if err != nil {
		return 0, err
	}
	n, err := c.count(ctx, s)
	if err != nil {
		return 0, err
	}
	return n[0], nil
}

// count asks every receiver attached to each of the pipes to answer,
// takers and listeners, and counts the answers of each pipe that come
// within Config.CensusWindow: one window for all the pipes, whatever their number,
// cut short when the satellite says that none of them has anyone.
func (c *Client) count(ctx context.Context, pipes ...wire.Subjects) ([]int, error) {
	var (
		mu       sync.Mutex
		seen     = make([]map[string]bool, len(pipes))
		none     = make([]bool, len(pipes)) // the satellite said "no responders"
		empty    int
		allEmpty = make(chan struct{})
	)
	if len(pipes) == 0 {
		return nil, nil
	}
	for i := range seen {
		seen[i] = map[string]bool{}
	}
	inbox := c.nc.NewRespInbox()
	// A callback, not NextMsg: NextMsg turns "no responders" into an error
	// that does not say which pipe it came from.
	sub, err := c.nc.Subscribe(inbox+".*", func(m *nats.Msg) {
		i, err := strconv.Atoi(wire.LastToken(m.Subject))
		if err != nil || i < 0 || i >= len(pipes) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if jsapi.Status(m) == jsapi.StatusNoResponse {
			if !none[i] {
				none[i] = true
				if empty++; empty == len(pipes) {
					close(allEmpty)
				}
			}
			return
		}
		if cm, ok := wire.ParseCtl(m.Data); ok && cm.Kind == wire.Join {
			seen[i][cm.RID] = true
		}
	})
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	for i, s := range pipes {
		if err := c.nc.PublishRequest(s.Who(), inbox+"."+strconv.Itoa(i), nil); err != nil {
			return nil, err
		}
	}
	window := time.NewTimer(c.cfg.CensusWindow)
	defer window.Stop()
	select {
	case <-window.C:
	case <-allEmpty:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	_ = sub.Unsubscribe()
	mu.Lock()
	defer mu.Unlock()
	n := make([]int, len(pipes))
	for i := range seen {
		n[i] = len(seen[i])
	}
	return n, nil
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
