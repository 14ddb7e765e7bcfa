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

// PipeInfo describes a pipe that keeps items or has receivers attached.
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

// List returns the pipes that keep items or have receivers attached, by
// name, with what their items are. Its cost grows with the items kept and
// the receivers attached, not with the pipes ever used: it asks the stream
// for its head subjects (the stream's info), reads the heads and then the
// last frame of each item (multi-last direct gets, one per jsapi.MaxLasts
// subjects), and takes one census of every pipe's receivers (WhoAll).
func (c *Client) List(ctx context.Context) ([]PipeInfo, error) {
	kept, err := c.listKept(ctx)
	if err != nil {
		return nil, err
	}
	receivers, err := c.census(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PipeInfo, 0, len(kept)+len(receivers))
	for tok, p := range kept {
		p.Receivers = receivers[tok]
		out = append(out, p)
	}
	for tok, n := range receivers {
		if _, ok := kept[tok]; ok {
			continue
		}
		name, err := wire.NameFromToken(tok)
		if err != nil {
			continue // not a skypipe receiver's answer
		}
		out = append(out, PipeInfo{Name: name, Receivers: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// listKept returns the pipes that keep items, by token, with what their
// items are.
func (c *Client) listKept(ctx context.Context) (map[string]PipeInfo, error) {
	js, err := c.jetstream()
	if err != nil {
		return nil, err
	}
	l := js.NewLookup()
	defer l.Close()
	// The heads' subjects from the stream's subject index (a scan of the
	// stream by a wildcard filter would walk every stored frame, gigabytes
	// of a big item's), then the heads themselves, one message a subject.
	var index map[string]uint64
	err = js.Retry(ctx, func(ctx context.Context) error {
		st, err := js.JS.Stream(ctx, wire.Stream)
		if err != nil {
			return err
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(wire.HeadsOfAll))
		if err != nil {
			return err
		}
		index = info.State.Subjects
		return nil
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing pipes: %w", err)
	}
	headSubjects := make([]string, 0, len(index))
	for subject := range index {
		headSubjects = append(headSubjects, subject)
	}
	var found map[string]jsapi.Head
	err = js.Retry(ctx, func(ctx context.Context) (err error) {
		found, err = l.Lasts(ctx, wire.Stream, headSubjects)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing pipes: looking for kept items: %w", err)
	}
	heads := make([]jsapi.Head, 0, len(found))
	for _, h := range found {
		heads = append(heads, h)
	}
	sort.Slice(heads, func(i, j int) bool { return heads[i].Seq < heads[j].Seq })
	type kept struct {
		head jsapi.Head
		item string
	}
	var (
		byPipe = map[string][]kept{} // by token, oldest first
		names  = map[string]wire.Subjects{}
		ends   = make([]string, 0, len(heads))
	)
	for _, h := range heads {
		tok, item, ok := wire.PipeOfHead(h.Subject)
		if !ok {
			continue
		}
		s, ok := names[tok]
		if !ok {
			name, err := wire.NameFromToken(tok)
			if err != nil {
				continue // not written by skypipe
			}
			s = wire.NewSubjects(name)
			names[tok] = s
		}
		byPipe[tok] = append(byPipe[tok], kept{h, item})
		ends = append(ends, s.Kept(item))
	}
	var lasts map[string]jsapi.Head
	err = js.Retry(ctx, func(ctx context.Context) (err error) {
		lasts, err = l.Lasts(ctx, wire.Stream, ends)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing pipes: looking at kept items' ends: %w", err)
	}
	out := make(map[string]PipeInfo, len(byPipe))
	for tok, items := range byPipe {
		s := names[tok]
		p := PipeInfo{Name: s.Name, Items: len(items)}
		for _, k := range items {
			var last []byte
			if m, ok := lasts[s.Kept(k.item)]; ok {
				last = m.Data
			}
			p.Bytes += keptBytes(k.head.Data, last)
			switch stateOf(k.head.Data, last) {
			case ItemWhole:
				p.Whole++
			case ItemSending:
				p.Sending++
			case ItemPartial:
				p.Partial++
				p.PartialItems = append(p.PartialItems, k.item)
			case ItemBroken:
				p.Broken++
				p.BrokenItems = append(p.BrokenItems, k.item)
			}
		}
		out[tok] = p
	}
	return out, nil
}

// census asks every receiver attached to any pipe to answer (WhoAll) and
// counts the answers by pipe token that come within Config.CensusWindow,
// cut short when the satellite says nobody is attached anywhere.
func (c *Client) census(ctx context.Context) (map[string]int, error) {
	var (
		mu         sync.Mutex
		seen       = map[string]map[string]bool{} // receiver ids by token
		nobody     = make(chan struct{})
		saidNobody sync.Once
	)
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.Subscribe(inbox+".>", func(m *nats.Msg) {
		if jsapi.Status(m) == jsapi.StatusNoResponse {
			saidNobody.Do(func() { close(nobody) })
			return
		}
		cm, ok := wire.ParseCtl(m.Data)
		if !ok || cm.Kind != wire.Join {
			return
		}
		tok := wire.LastToken(m.Subject)
		mu.Lock()
		defer mu.Unlock()
		if seen[tok] == nil {
			seen[tok] = map[string]bool{}
		}
		seen[tok][cm.RID] = true
	})
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	if err := c.nc.PublishRequest(wire.WhoAll, inbox+".all", nil); err != nil {
		return nil, err
	}
	if err := c.censusWindow(ctx, nobody); err != nil {
		return nil, err
	}
	_ = sub.Unsubscribe()
	mu.Lock()
	defer mu.Unlock()
	n := make(map[string]int, len(seen))
	for tok, ids := range seen {
		n[tok] = len(ids)
	}
	return n, nil
}

// keptBytes is how many bytes of an item's data the store holds, from its
// head marker (the offset it is kept from) and its last stored frame.
func keptBytes(head, last []byte) uint64 {
	h, err := wire.Parse(head)
	if err != nil || last == nil {
		return 0
	}
	f, err := wire.Parse(last)
	if err != nil {
		return 0
	}
	return max(f.Offset+uint64(len(f.Data)), h.Offset) - h.Offset
}

// OldPipes returns the names of the pipes that keep items in streams of
// the old layout, one stream per pipe, which receivers do not read:
// Migrate moves them into the shared stream.
func (c *Client) OldPipes(ctx context.Context) ([]string, error) {
	olds, err := c.oldStreams(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(olds))
	for _, o := range olds {
		names = append(names, o.s.Name)
	}
	sort.Strings(names)
	return names, nil
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
	if err := c.censusWindow(ctx, allEmpty); err != nil {
		return nil, err
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

// censusWindow waits while receivers answer a census published just
// before, or until cut says nobody is there to answer. It first waits for
// the satellite to have the census (a flush: one round trip of this
// connection, rtt), then Config.CensusWindow and rtt more: a receiver
// across a link like this one answers a round trip after the satellite
// passed the census on. On loopback that is CensusWindow; across a 200 ms
// link about 500 ms.
func (c *Client) censusWindow(ctx context.Context, cut <-chan struct{}) error {
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, c.cfg.APITimeout)
	err := c.nc.FlushWithContext(fctx)
	cancel()
	if err != nil {
		return fmt.Errorf("counting receivers: %w", err)
	}
	window := time.NewTimer(c.cfg.CensusWindow + time.Since(start))
	defer window.Stop()
	select {
	case <-window.C:
	case <-cut:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
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
	if len(info.State.Subjects) == 0 {
		return 0, nil
	}
	if _, err := js.Purge(ctx, s.Stream, s.Stored()); err != nil {
		return 0, fmt.Errorf("removing the items of pipe %q: %w", name, err)
	}
	// Drop the claims on them too: their readers learn at once that the
	// items are gone.
	prefix := s.Claim("")
	for info := range st.ListConsumers(ctx).Info() {
		if strings.HasPrefix(info.Config.FilterSubject, prefix) {
			if err := js.JS.DeleteConsumer(ctx, s.Stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return 0, fmt.Errorf("removing the items of pipe %q: dropping a claim: %w", name, err)
			}
		}
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
	if !wire.ValidItem(item) {
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
