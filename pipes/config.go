package pipes

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
)

// Config holds every timing and size of the pipes a Client moves. The zero
// value is not usable: start from DefaultConfig.
type Config struct {
	// LiveWindow is how far a sender may run ahead of the slowest attached
	// receiver, in bytes: the credit each receiver has. Far below the 64
	// MiB a NATS server or client buffers per connection before it drops
	// a slow consumer.
	LiveWindow int
	// LiveWindowMax and LivePath: a sender whose receivers' acks take
	// LivePath or more to come back, and that waits for them with no queue
	// building on the path, doubles its window, up to LiveWindowMax, see
	// liveWindow. Its ring holds a window more, so the cap is its memory:
	// 16 MiB took a sender across 200 ms to 37 MiB RSS (30 at 8 MiB) and a
	// 128 MiB item from 17.8 to 25.6 MB/s; 24 MiB would pass 40 MiB.
	// Receivers let a live item's bytes wait behind an open line as far
	// as a sender's window may reach.
	LiveWindowMax int
	LivePath      time.Duration
	// HoldLimit is how many bytes of an item may wait behind another
	// item's open line on a receiver's output, counted as taken in: the
	// longest line kept whole. Senders keep this much more in their ring.
	HoldLimit int
	// LineStall: an open line whose item sent nothing for this long is
	// cut, so that a sender stopped mid-line does not hold others back.
	LineStall time.Duration

	// IdleProbe: after this long without news from a peer it waits on, a
	// party asks whether that peer still lives.
	IdleProbe time.Duration
	// ProbeTimeout: a peer that does not answer a probe in this time,
	// twice in a row while the satellite itself answers, is gone.
	ProbeTimeout time.Duration
	// Reconnect matters only on a connection that reconnects (nats.go's
	// AllowReconnect): how long a peer found gone is given to come back,
	// since its connection may be re-established meanwhile. A receiver
	// waits as long for the sender of the item it reads, then breaks the
	// item (ErrSenderVanished); a sender for an attached receiver (which
	// holds its pace), then keeps the rest of the item. Without
	// reconnects, both act at once.
	Reconnect time.Duration
	// ResendWait: a receiver that lost live frames of an item (they were
	// in flight when a connection was lost) asks the sender to send them
	// again; if they have not come after this long, the item is broken.
	ResendWait time.Duration
	// RollCallTimeout bounds a sender's wait for the first answer to its
	// roll call; with none the item is kept.
	RollCallTimeout time.Duration
	// WholeWait: a sender whose first read is small waits this long for
	// its input's end, so that an item read whole in that time (a
	// trigger, a job line, a small file) rides with its offer to a taker
	// (see decide.go) and is out a round trip sooner.
	WholeWait time.Duration
	// FrozenAfter: a taker whose own clock ticks were this much apart
	// (the process was stopped, the machine slept), or are now, does not
	// write out an item from its offer, whose sender may have given up on
	// it long ago: it takes the item as it is sent. Below the time a
	// decision is kept (decisionKeep) less a connection's stale time,
	// above Rescan.
	FrozenAfter time.Duration
	// CensusWindow is how long List and Attached collect receivers'
	// answers to a census, once the satellite has it, beyond one round
	// trip of their own connection: the count is of those that answer
	// within it.
	CensusWindow time.Duration
	// Tick is how often a receiver looks at the time: timeouts, quiet
	// senders, stalled lines. A receiver with nothing in flight (no item,
	// no held line, no --timeout) looks only every Rescan.
	Tick time.Duration
	// Rescan is how often an idle receiver looks in the store for kept
	// items that no live frame announced.
	Rescan time.Duration

	// APITimeout bounds one JetStream API call.
	APITimeout time.Duration
	// AckTimeout: kept frames the satellite has not confirmed this long
	// after the last confirmation are published again, and again every
	// AckTimeout while none is confirmed, on a connection that reconnects
	// (their Nats-Msg-Id makes the stream drop a copy it holds): a
	// cluster whose leader died lost them. AckGiveUp without a
	// confirmation fails the item (ErrNotStored). A satellite that is
	// only busy confirms late, not never: 50 kept senders on a loaded
	// 2-core machine saw every pipe's confirmations stop for 3.2 s at
	// once, and more than 10 s in CI, where AckTimeout alone then failed
	// a sender.
	AckTimeout time.Duration
	AckGiveUp  time.Duration
	// StoreWindow is how many kept frames a sender has in flight before it
	// waits for the satellite to confirm them, at first; a sender at least
	// StorePath away from the satellite (its roll call's "nobody" took that
	// long, or it waited for confirmations across such a path) goes to
	// StoreWindowMax at once (16 MiB at 64: 59 MB/s across 200 ms), see
	// pathWindow. A connection that reconnects keeps a copy
	// of each frame in flight (to publish it again once it is back), so
	// the window is the sender's memory: 64 frames took a 1 GiB kept send
	// on loopback to 38 MiB RSS, against 18 with none. A reader puts
	// frames stored out of order back in order across StoreWindowMax.
	StoreWindow    int
	StoreWindowMax int
	StorePath      time.Duration
	// FailoverWait is how long JetStream calls are tried again, every
	// FailoverRetry, while a cluster that lost a member elects leaders.
	FailoverWait  time.Duration
	FailoverRetry time.Duration
	// SettleTime: in a cluster, how long the store's answer that an item
	// has nothing more must hold before the item counts as cut.
	SettleTime time.Duration

	// KeptPullMsgs is how many frames one pull of a kept item asks for,
	// KeptPullBytes how many bytes a pull of an item still being sent,
	// and KeptSlots how many kept frames may wait for the receiver's
	// loop: together what bounds a draining receiver's memory.
	// KeptPullsOut pulls are out at a time at first, so
	// KeptPullsOut*KeptPullMsgs frames (2 MiB at 2 and 4) are on their
	// way while KeptSlots wait: at 8 a pull the receiver's heap goal,
	// twice what it holds, took its RSS 5-6 MiB over one pull of 16 frames
	// at a time, for no faster drain on loopback. A reader at least
	// KeptPullPath away from the satellite that waits for frames doubles
	// its pulls out, up to KeptPullsMax (8 MiB at 8: 40 MB/s across 200
	// ms), see pathWindow.
	KeptPullMsgs  int
	KeptPullBytes int
	KeptSlots     int
	KeptPullsOut  int
	KeptPullsMax  int
	KeptPullPath  time.Duration
	// KeptPullWait is how long a pull waits for frames of an item still
	// being sent before it is asked again; a pull that gets no answer at
	// all for FailoverWait loses the claim.
	KeptPullWait time.Duration
	// HeadBatch is how many item heads one look into the store returns.
	HeadBatch int
	// AheadDepth is how many kept items a follower claims ahead of the
	// one it reads, and AheadPull how many frames of each it pulls then.
	AheadDepth int
	AheadPull  int
	// CleanupBacklog is how many finished kept items may wait for their
	// removal from the pipe before the receiver waits, and CleanupWorkers
	// how many are removed at once.
	CleanupBacklog int
	CleanupWorkers int
	// Remember is how many finished items a follower remembers, to ignore
	// their late live frames and the heads of kept ones on their way out
	// of the pipe. Older ones are forgotten, so that a follower that runs
	// for months holds no more than this of them.
	Remember int

	// strict makes a broken invariant panic (tests) rather than only
	// failing the item.
	strict bool
	// cleanupStarting, if set (tests), is called as the removal of a kept
	// item written out whole begins.
	cleanupStarting func(item string)
	// readStarting, if set (tests), is called by the reader of a claimed
	// item before its first pull; ctx ends when the reader is stopped.
	readStarting func(ctx context.Context, item string)
	// ctlHeard, if set (tests), is called by a sender's control listener
	// with each message it takes in, before it acts on it; verdictQueued,
	// once a probe's verdict that receiver rid is gone is queued for it.
	ctlHeard      func(item string, m *nats.Msg)
	verdictQueued func(item, rid string)
	// keptLooked, if set (tests), is called by a receiver after each look
	// for kept items with how many it found; when it found some, mayTake
	// tells whether it may take one.
	keptLooked func(found int, mayTake bool)
	// windowGrew, if set (tests), is called by a sender whose live window
	// grew, with its new size.
	windowGrew func(item string, size int)
	// migrateCopied, if set (tests), is called by Migrate once it copied
	// a pipe's old stream, before it looks whether anything was added.
	migrateCopied func(name string)
}

// DefaultConfig returns the timings and sizes skypipe uses.
func DefaultConfig() Config {
	return Config{
		LiveWindow:    8 << 20,
		LiveWindowMax: 16 << 20,
		LivePath:      10 * time.Millisecond,
		HoldLimit:     1 << 20,
		LineStall:     time.Second,

		IdleProbe:       2 * time.Second,
		ProbeTimeout:    3 * time.Second,
		Reconnect:       2 * time.Minute,
		ResendWait:      10 * time.Second,
		RollCallTimeout: 2 * time.Second,
		WholeWait:       2 * time.Millisecond,
		FrozenAfter:     30 * time.Second,
		CensusWindow:    100 * time.Millisecond,
		Tick:            250 * time.Millisecond,
		Rescan:          2 * time.Second,

		APITimeout:     10 * time.Second,
		AckTimeout:     10 * time.Second,
		AckGiveUp:      60 * time.Second,
		StoreWindow:    8,
		StoreWindowMax: 64,
		StorePath:      10 * time.Millisecond,
		FailoverWait:   30 * time.Second,
		FailoverRetry:  250 * time.Millisecond,
		SettleTime:     2 * time.Second,

		KeptPullMsgs:   4,
		KeptPullBytes:  4 << 20,
		KeptSlots:      8,
		KeptPullsOut:   2,
		KeptPullsMax:   8,
		KeptPullPath:   10 * time.Millisecond,
		KeptPullWait:   2 * time.Second,
		HeadBatch:      64,
		AheadDepth:     4,
		AheadPull:      4,
		CleanupBacklog: 8,
		CleanupWorkers: 4,
		Remember:       1 << 16,
	}
}

// ringSize is how many bytes a sender with a window of window bytes keeps
// of what it sent live: all that an attached receiver may not have written
// out yet (up to the window not taken in, HoldLimit and a chunk taken in
// but waiting behind another item's line), so that it can keep them if
// that receiver leaves.
func (c Config) ringSize(window int) int { return window + c.HoldLimit + 2*chunkSize }

// maxHeld bounds the bytes of a live item waiting behind an open line: its
// sender's credit runs out before, whatever its window grew to.
func (c Config) maxHeld() int { return c.HoldLimit + max(c.LiveWindow, c.LiveWindowMax) + 2*chunkSize }
