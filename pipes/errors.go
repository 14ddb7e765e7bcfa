package pipes

import (
	"errors"
	"strconv"

	"github.com/skypipe/skypipe/internal/wire"
)

// Errors callers tell apart with errors.Is.
var (
	// ErrInvalidName: the pipe name is not valid UTF-8, holds a control
	// character, or is longer than MaxNameLen bytes.
	ErrInvalidName = errors.New("invalid pipe name")

	// ErrTimeout: a receiver waited its whole timeout and nothing arrived.
	ErrTimeout = errors.New("nothing arrived in time")

	// ErrSenderVanished: the sender of an item went away before its end.
	ErrSenderVanished = errors.New("sender vanished mid-item")

	// ErrSenderAborted: the sender of an item gave up before its end
	// (interrupted, or its input failed).
	ErrSenderAborted = errors.New("sender gave up mid-item")

	// ErrCorrupt: an item's data arrived damaged, out of order or with a
	// gap, and reading it again from the store found the same.
	ErrCorrupt = wire.ErrCorrupt

	// ErrPartial: the item written out did not start at its first byte:
	// it was kept from mid-way (its earlier bytes went to a receiver that
	// left), or the receiver joined it mid-way. Only a tail was written.
	ErrPartial = errors.New("only a tail of the item was written out")

	// ErrClaimLost: another receiver took over the kept item this receiver
	// was reading (it judged this one dead).
	ErrClaimLost = errors.New("kept item taken over by another receiver")

	// ErrDisconnected: the connection to the satellite was lost mid-way.
	// What was kept stays kept; what was in flight may not have arrived.
	ErrDisconnected = errors.New("lost the connection to the satellite")

	// ErrPipeFull: the satellite's store is at its cap; the item being sent
	// was not kept. Items kept before are untouched.
	ErrPipeFull = errors.New("pipe full")

	// ErrAccountLimit: a NATS account's JetStream limit (its max_streams,
	// or its max_file or max_bytes) stopped an item from being kept. It
	// comes with ErrPipeFull; what the account kept before is untouched.
	ErrAccountLimit = errors.New("the NATS account is at its JetStream limit")
	// ErrNoRoomForStream: with ErrAccountLimit, the limit is the
	// account's number of streams, and skypipe's one stream is not among
	// them yet.
	ErrNoRoomForStream = errors.New("it may hold no more streams (max_streams)")

	// ErrNotStored: the satellite did not confirm storing a kept item in
	// time (it is overloaded, or its cluster lost the pipe's leader). The
	// item is not handed out as whole.
	ErrNotStored = errors.New("the satellite did not confirm storing the item")

	// ErrOutput: writing the item out failed (stdout closed, disk full).
	// The receiver released the item: a kept item stays whole in the pipe.
	ErrOutput = errors.New("cannot write output")

	// ErrInputChanged: a regular file being sent changed under the sender,
	// which read some of it again to store it after a lost connection
	// (Send keeps no copies of a file's bytes). The item is given up.
	ErrInputChanged = errors.New("the file being sent changed while it was sent")
)

// ItemError is what a receiver returns when an item breaks: which item, how
// many of its bytes were written out, and why (one of the errors above).
type ItemError struct {
	Item    string
	Written uint64
	Err     error
}

func (e *ItemError) Error() string {
	return "item " + e.Item + ": " + e.Err.Error() + " after " + strconv.FormatUint(e.Written, 10) + " bytes"
}

func (e *ItemError) Unwrap() error { return e.Err }
