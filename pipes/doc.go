// Package pipes moves items through named pipes on a NATS server with
// JetStream: live to the receivers attached to a pipe, kept in the pipe
// while none is. It knows pipes, not command lines or servers: give it a
// *nats.Conn, an io.Reader to send or an io.Writer to receive into.
//
// # The contract
//
// Every byte a sender reads goes to the receivers it should, or the
// receiver says it did not; while none is attached an item is kept in the
// pipe, in order, until a receiver takes it. Nothing is dropped. An item is
// what one sender sends up to its EOF.
//
// Receivers have one of two roles (ReceiveOptions.Role). A taker (Take, the
// zero value) gets each item for itself alone: the oldest kept item no
// other receiver is taking, else the next item sent, which the sender
// offers on the take subject, a queue group, so that exactly one waiting
// taker answers (a busy one passes, a sender tries again up to 16 times,
// then keeps the item; a taker whose answer comes after the sender went on
// without one is refused, on its rcv subject, and looks in the store). A
// listener (Listen) gets a copy of what is sent live, whoever takes it, and
// with no taker attached it takes the live item (nothing is kept) or a kept
// one: a listener asks whether a taker waits (a message on the take
// subject gets "no responders" if none does; in the flight of its first
// look for kept items, later once a look found some), and leaves kept
// items to the takers if one does (believing a taker found for Rescan).
// Without Follow a receiver returns at its item's end; an item written out
// from a byte other than its first is ErrPartial unless PartialOK. With
// Follow a broken item is reported and skipped (its open line ended)
// unless Strict.
//
// # Names and subjects
//
// A pipe name (UTF-8, at most 255 bytes, no control characters) becomes one
// subject token (Token): ASCII letters, digits and '-' stand for themselves,
// every other byte is '_' and two hex digits, and the default pipe ("") is
// a lone "_". The mapping is injective and its tokens never hold '.', '*',
// '>' or spaces, so every name reaches its own subjects and only them.
// Under skypipe.<token>:
//
//	live.<item>  live frames of an item: core NATS, every receiver subscribes live.*
//	h.<item>     kept: the item's first kept frame, a marker with its start offset
//	k.<item>     kept: the item's data frames and its end frame
//	item.<item>  the sender's control inbox: receivers' acks, claims, leaves,
//	             probes, and asks to send live frames again (Resend)
//	roll         roll call: listeners answer a sender with their id
//	take         offers of a new item: one taker of the queue group answers
//	who          census: every receiver attached answers (Attached)
//	join         receivers announce themselves (and leave) to senders already sending
//	rcv.<id>     a receiver's inbox: liveness probes, a late Take refused
//	dec.<item>   the decision record of an item offered with its data
//	             (stream SKYPIPE-DECISIONS, see "Offers")
//
// and skypipe.who, the census of every pipe (ls): each receiver answers on
// the request's reply subject with its pipe's token appended.
//
// # The store
//
// The kept subjects of every pipe (h.<item>, k.<item>) belong to one
// JetStream stream, SKYPIPE: file storage, work-queue retention, DiscardNew,
// direct gets, up to 2^20 claims at once. A pipe is only a name: one that
// keeps nothing costs the satellite nothing, however many names were ever
// used (a stream per pipe, the old layout, cost each name a stream, its
// files and its memory forever). --max-store caps the satellite's whole
// store, not a pipe's. ls reads the head subjects from the stream's subject
// index and the heads and items' ends by multi-last direct gets, and finds
// pipes with receivers and nothing kept by one census (skypipe.who); rm purges
// a pipe's subjects and drops the claims on them.
//
// The old layout kept a pipe's items in a stream of its own, SKYPIPE_ and a
// digest of the name, on head.* and kept.*, which a stream on h.* and k.*
// does not overlap. Receivers read only SKYPIPE. Migrate moves old streams
// into it, each pipe's items in order: 'skypipe serve' does so before it
// lets any client in, 'skypipe setup migrate' on a NATS of the user's own.
//
// # Frames
//
// An item travels as frames (internal/wire): a 16-byte header (version,
// flags, CRC-32C, offset) and up to 256 KiB of data, then an end frame that
// carries the item's length. The offset lets a receiver see gaps,
// duplicates and reordering; the checksum sees damage; the end frame tells
// a finished item from one whose sender vanished. A frame the receiver
// already has is skipped (a frame sent again after a lost connection is
// one); a live gap is first asked for again (see "Reconnecting"); damage,
// and a gap that stays, make the receiver exit with an error (ItemError)
// rather than hand over a broken item as whole. A gap in a kept item is
// first taken for the receiver's own loss (frames in flight when its link
// stalled): it reads the item again from the store, skipping what it has;
// only a gap the store itself holds breaks the item.
//
// # Offers
//
// A sender offers each item on the take subject (a queue group: the
// satellite hands the offer to one waiting taker) while it calls the roll
// of listeners. An item the sender has read whole by then, up to
// wire.MaxOffer (64 KiB; a first read that small waits Config.WholeWait, 2
// ms, for its input's end), rides with the offer: its frames, as they would
// go live. A taker could write it out at once, a round trip before the
// frames would come; but a sender that hears nothing within
// RollCallTimeout gives up on the taker and keeps the item, and then it
// would be handed out twice. So the satellite settles who has it: the
// taker, before it writes the item out, and a sender that gives up, each
// publish the item's decision record to dec.<item> in the stream
// SKYPIPE-DECISIONS (memory, records kept 5 minutes), expecting the
// subject to hold nothing (Nats-Expected-Last-Subject-Sequence 0). One is
// stored; the other is refused and yields: a refused taker looks for the
// item in the store, a refused sender reads the taker's id in its record
// and counts the item as that taker's (waiting for its ack, probing it if
// it is silent, keeping the item from its first byte if it is found
// gone, as for any taker). The taker answers Take once its record is
// stored, and acks the item as it writes it out; the sender then sends its
// frames live as usual, and the taker, done already, skips them. A taker
// whose record gets no clear answer (no such stream: a NATS of the user's
// own before its first kept item; the records at their cap; no answer in
// APITimeout) takes the item as before: it answers Take and waits for the
// frames, which only a sender that heard the Take sends. So does a taker
// whose own clock stood still lately (Config.FrozenAfter): an offer read
// then may be older than the records are kept. Offers without data (from
// SendLines' items, larger items, an older skypipe) and takers that read
// only those (an older skypipe) work as before. 'skypipe serve' makes the
// stream as it starts (Prepare); elsewhere it comes with the store of
// kept items, or with the first sender that gives up on a taker.
//
// # Live: broadcast held to the slowest receiver
//
// A sender first calls the roll: each attached receiver answers with its id
// on the sender's control inbox, or the server answers "no responders"
// (status 503) at once when nobody listens. Receivers that attach later
// announce themselves on the join subject, which senders subscribe to
// before the roll call, so none is missed. Frames then go to live.<item>,
// and every receiver acks what it has written out. The sender never runs
// more than its window ahead of the slowest receiver, far below the 64 MiB
// that a NATS server or client buffers per connection before it drops a
// slow consumer: the sender is paced like a Unix pipe writer and nothing is
// dropped. The window is Config.LiveWindow (8 MiB); a sender whose
// receivers answer its roll call, and ack its frames, LivePath (10 ms) or
// more later (a frame's ack also waits for the window ahead of it to drain:
// the roll call times the path itself), and that waits for acks while no
// queue builds on the path (the latest round trip within half the least one
// more), doubles it, up to LiveWindowMax (16 MiB), so that a WAN is less
// bound by a window a round trip (livewindow.go). A receiver that stops
// acking is probed on rcv.<id>; one that does not answer is dropped from
// the audience within seconds and stalls no one. Acks, joins and leaves
// reach the sender through one channel, so an ack is never read after the
// leave that followed it; so does a probe's verdict that a receiver is
// gone, behind all that receiver sent before it went (the satellite
// answered the probe after it passed those on), so that a receiver that
// wrote the item out and left at once is never taken for one that left
// part of it to keep. A receiver's quiet check does the same for a sender
// found gone (nothing more waiting to be read, below).
//
// Acks carry two offsets: what the receiver wrote out, and what it took in.
// A receiver writes several items to one output but never one inside
// another's line, so bytes may wait behind another item's open line
// (internal/linemux); those count as taken in, up to a limit, so that two
// receivers waiting on each other's open lines never hold both senders.
//
// # Kept: a work-queue stream, one claimant per item
//
// With nobody attached, the sender stores the item: a head marker, then
// every later frame, each confirmed by the satellite: a window of
// StoreWindow (8) frames from the oldest unconfirmed one, StoreWindowMax
// (64) for a sender far from the satellite (pathwindow.go), so a frame
// published again is stored within a window of its place. The head goes out with the frames after it when the
// store is known to exist: a sender asks (STREAM.INFO) beside its roll
// call, and a Client remembers the answer; otherwise the head is stored by
// request, which makes the store on a satellite's first kept item. When a
// receiver of a live item leaves (or is found dead) having written the item
// out up to some byte, and no remaining receiver was attached before that
// byte, nobody will write out what follows: the sender keeps the item from
// there. It holds the bytes it sent live that a receiver may not have
// written out yet (a ring of its window, HoldLimit and two chunks, 9.5 MiB
// at first, in blocks of 64 KiB allocated as the item grows and then
// reused) for exactly this; a sender asked to keep bytes its ring no longer
// holds fails the item rather than keep it with a hole. Once an item is
// kept, all the rest of it is kept as well, so that whoever takes it gets
// it whole; receivers attached meanwhile also get it live, from where they
// attached. A receiver that attaches after the end of an item went out live
// is not waited for.
//
// A receiver takes a kept item by creating a consumer filtered on that
// item's subjects (skypipe.<token>.*.<item>). A work-queue stream refuses a
// second consumer with an overlapping filter (error 10100), so the consumer
// is a lock: two receivers never split an item. The claimant holds all acks
// to the end (AckWait of a year, MaxAckPending unlimited) and, once it has
// written the end, acks every frame it read (the work queue deletes acked
// messages; the last ack waits for the satellite's answer), falling back on
// a purge of the item's subjects (on a cluster it always purges: a purge is
// answered once a majority holds it, an ack may die with its leader), and
// only then deletes its consumer, behind the receiver's loop; it answers
// presence probes until then, so that no other receiver judges it gone and
// takes the item again. If it dies instead, the item is still whole in the
// stream: the next receiver that meets error 10100 probes the holder (its
// id is in the consumer's metadata), deletes the consumer of a dead one,
// and takes the item from its first byte. A receiver finds the oldest kept
// items by asking the stream for the messages on its pipe's h.* from a
// sequence on (a batched direct get, with no consumer), skipping items
// others hold. A receiver without Follow asks, beside its first such look
// and in the same flight, for the pipe's first frames (up to 8 of them and
// 64 KiB): a small item found whole among them, head to end, is written out
// from there once its consumer is made, if the claim finds just those
// frames stored, with no pull; it is then removed by a purge of its
// subjects. It pulls exactly the frames its claim found stored (the
// consumer's pending count), in pulls of KeptPullMsgs, since a pull for
// more makes the satellite look through every later message of the stream;
// only an item still being sent is pulled for more than is there.
// KeptPullsOut pulls are out at a time; a reader across a long path
// (KeptPullPath or more) that finds itself waiting for stored frames
// doubles that, up to KeptPullsMax, so that a drain across a WAN is not
// bound by one pull's round trip (pathwindow.go). The path is the least
// round trip seen: of the receiver's looks for kept items (direct gets)
// and of a pull asked with none out, so that a first pull slowed by a
// cold store does not make a short path look long. All pulls of a claim go through one
// inbox that lives as long as the claim, so a frame the satellite sent for
// a pull that ran out (its link stalled) still arrives: nats.go's Fetch
// would drop it, and with the claim's AckWait of a year it would never come
// again.
//
// For a pipe of many small items, a follower claims a few items ahead of
// the one it reads and pulls their first frames (claim.go), so that no
// claim's round trips stand between two items; others see those items
// held by a live receiver.
//
// A receiver without Follow that takes a kept item wants that item only: it
// leaves the audience of every other item (senders keep those for the next
// receiver) and stops answering roll calls, so one receiver takes one item,
// as one receive takes one value from a Go channel. A receiver with Follow
// stays in every audience and takes kept items one after another; while the
// one it reads is still being sent, it takes the next one too, so that an
// aggregator gets every line of senders that are all still running.
//
// A receiver that takes a kept item whose sender is still sending reads the
// stream as the sender fills it and tells the sender, which stops pacing on
// it; it thereby goes on with the item live. A sender that had already
// decided to keep its item marks its live frames "kept", so a receiver that
// attached in that instant claims the item instead of starting it mid-way;
// a taker that finds it held by another receiver leaves it to that one, and
// one that finds nothing of it stored yet reads it live.
//
// # Presence and failure
//
// A receiver waiting on an item that went quiet probes the sender on
// item.<item>. "No responders", or two silent probes while the satellite
// itself answers, and nothing more in flight or in the stream (as the
// stream's leader says), means the sender is gone: the receiver reports how
// many bytes it wrote and, for a kept item, removes the broken item so that
// it does not block the items behind it. In a cluster, where a leader just
// elected may not yet serve all it holds, it stores an abort frame behind
// the item instead (stored after all the leader holds, so harmless if more
// of the item comes to light) and leaves it: the next receiver that meets
// the abort removes it. A sender that fails stores an abort frame behind
// its partial item, then removes the item, unless a receiver is known to
// read it (that receiver meets the abort and removes it; one whose claim
// was still on its way gets the abort from its pull before the removal),
// so a failed send keeps nothing; RemoveItem removes
// one item by id. A stored frame that the satellite holds but does not
// deliver for FailoverWait makes the receiver read the item again; every
// wait of a receiver is bounded. A silent satellite (paused, electing
// leaders) proves nothing about a peer.
//
// # Reconnecting
//
// On a connection that reconnects (nats.go's AllowReconnect; the CLI's
// connections do, closed after 'skypipe --reconnect DUR' of trying, two
// minutes by default), a lost connection
// is not an error: Send and Receive say "reconnecting" (WithNotice) and
// resume once it is back, to the same satellite restarted on its store or
// to another member of a cluster (the CLI's connections try the members a
// user names, in that order); on one that does not, it fails them with
// ErrDisconnected, as before.
//
//   - Live: frames in flight when a connection went are lost. Once back, a
//     sender sends its item again from the least any receiver took in (its
//     ring holds those bytes), and each receiver asks its senders, on
//     item.<item> (Resend), to send again from the next byte it expects;
//     receivers skip what they have by offset. A frame past a gap is
//     dropped and the gap asked for again; a gap still open after
//     Config.ResendWait breaks the item. Publishes and flushes that fail
//     while the connection is down lose only what is sent again.
//   - Kept: a sender gives every kept frame a Nats-Msg-Id and a reply
//     subject of its own, and holds a copy until the satellite confirms it
//     (of a regular file, only its header: the bytes are read from the file
//     again, and a file changed meanwhile fails it with ErrInputChanged);
//     once back it publishes the unconfirmed ones again, and the stream
//     drops those it had. One whose first copy a cluster's leader is still
//     storing is answered "in process" (JetStream error 10158) and goes
//     out again after FailoverRetry. Frames it published meanwhile may be stored
//     before them: a claim's reader holds frames past a gap (up to
//     StoreWindowMax of them) until the gap fills, so the loop gets them in
//     order (reorder.go); a gap that does not fill reaches the loop, which
//     reads the item again. A draining receiver asks its lost pulls again;
//     time with the connection down does not count against FailoverWait,
//     nor against AckTimeout and AckGiveUp for a sender. A pull nobody serves whose
//     consumer is gone (a satellite restarted on its store keeps no
//     claims) makes the receiver claim the item again and read it from its
//     head, skipping what it wrote (unless another took it meanwhile).
//   - Presence: a peer found gone (no responders, or two silent probes) is
//     given Config.Reconnect to come back, by receivers (the item's sender)
//     and senders (an attached receiver, which holds the sender's pace
//     meanwhile) whose own connection reconnects: a killed peer and one
//     cut off look the same from here. Found gone and back are said at
//     once; only after Reconnect is the item broken, or the rest kept.
//
// # Store limits and clusters
//
// A satellite caps its store (serve --max-store); a kept frame past the cap
// is refused with "insufficient resources", which a sender reports as
// ErrPipeFull after taking its partial item out. Frames the satellite does
// not confirm within AckTimeout are published again, every AckTimeout
// while none is confirmed, by a connection that reconnects (they carry
// a Nats-Msg-Id): a cluster whose leader died lost them. None confirmed
// for AckGiveUp fails the item (ErrNotStored): a busy satellite confirms
// late, not never. On a cluster the stream has three replicas, and
// JetStream calls that time out
// while the cluster elects leaders (or on a loaded satellite) are retried
// for FailoverWait (internal/jsapi: one retry rule for every call). A call
// asked again may have landed the first time: a head carries a
// Nats-Msg-Id, so the stream keeps one, and a claim whose create is
// answered "consumer already exists" finds its consumer by its name,
// which is that claim's alone. WithJetStreamDomain
// reaches a JetStream that runs in a domain (a hub, from a leaf node): every
// API request then goes to $JS.<domain>.API.
//
// # Structure
//
// Each job is one type with one owner; every goroutine is waited for by
// whoever started it, and every timing and size is a field of Config.
//
//	Client       one connection: its Config, its JetStream API (internal/jsapi),
//	             and confirmations: one subscription that hands the store's
//	             confirmations to the writers of every item it keeps
//	sender       one item being sent: its state (sendState, with the moves
//	             sendMoves allows), reading ahead, the roll call, the ring
//	audience     the receivers of the item being sent: pacing by the slowest,
//	             and from where the item must be kept when they leave
//	liveWindow   how far the sender may run ahead of them, grown across a
//	             long path
//	storeWriter  a kept item's frames on their way into the store, their
//	             confirmations and the watchdog that fails a silent store
//	input        a sender's regular file, which its storeWriter reads frames
//	             from again instead of holding copies (reread.go)
//	receiver     the event loop of one Receive: it dispatches events (live
//	             frames, kept frames, reader failures, probe answers) and
//	             keeps each item's state (itemState, with itemMoves); a
//	             follower forgets finished items but their ids (the last
//	             Config.Remember of them); a taker starts an item only from
//	             its offer, never from a live frame of one it dropped
//	linemux.Mux  the receiver's output: lines of several items, never one
//	             inside another; it returns the acks due and the items
//	             ended, and the loop sends and completes them
//	claimer      the receiver's kept items: finding, claiming (ahead, for a
//	             follower), reading them through one pull inbox each, and
//	             removing the finished ones behind the loop
//	reorder      a claim's reader's frames put back in offset order when a
//	             lost connection stored them out of order
//	prober       presence probes of peers, for senders and receivers alike
//	offerGate    a sender's offer of its item: the first Take (or the
//	             taker's record, settleOffer) or the sender's decision wins;
//	             the gate queues the winning Take ahead of the taker's acks
//	freezeGuard  whether a taker's clock stood still lately (decide.go)
//
// A Read of the sender's input that blocks is the only goroutine that may
// outlive Send (stdin cannot be interrupted); it ends at its next return.
package pipes
