package wire

import "strings"

// The subjects of one pipe, all under "skypipe.<token>". See pipes/doc.go
// for what travels on each.
const (
	Root = "skypipe"
	// Stream is the one JetStream work-queue stream that keeps the items
	// of every pipe, on the subjects StreamSubjects.
	Stream = "SKYPIPE"
	// StreamPrefix begins the names of the streams of the old layout, one
	// per pipe (see Subjects.Old).
	StreamPrefix = "SKYPIPE_"

	kindLive    = "live" // live chunks of an item: skypipe.<tok>.live.<item>
	kindHead    = "h"    // first kept chunk of an item (stream)
	kindKept    = "k"    // further kept chunks of an item (stream)
	kindOldHead = "head" // the same, in a stream of the old layout
	kindOldKept = "kept"
	kindItem    = "item" // a sender's control inbox: acks, claims, leaves, pings
	kindRoll    = "roll" // roll call: which listeners are attached?
	kindTake    = "take" // offers of new items, to one taker (a queue group)
	kindWho     = "who"  // census: every receiver attached answers
	kindJoin    = "join" // a receiver announcing itself, or leaving
	kindRcv     = "rcv"  // a receiver's own inbox: pings
	kindDecided = "dec"  // who an item offered with its data went to (DecisionStream)

	// MetaName is the metadata key of an old layout's stream holding its
	// pipe's name.
	MetaName = "skypipe.name"
	// MetaReceiver is the consumer metadata key holding the claimant's id.
	MetaReceiver = "skypipe.receiver"
)

// StreamSubjects are the subjects of the stream Stream: every pipe's
// stored frames.
var StreamSubjects = []string{Root + ".*." + kindHead + ".*", Root + ".*." + kindKept + ".*"}

// DecisionStream is the JetStream stream that settles who an item offered
// with its data goes to: a taker and a sender that gave up waiting each
// try to store the item's first record (expected last subject sequence
// 0), and the one that fails yields. Records are small, in memory, and
// kept DecisionKeep (see pipes/doc.go, "Offers").
const DecisionStream = "SKYPIPE-DECISIONS"

// DecisionSubjects are the subjects of DecisionStream.
var DecisionSubjects = []string{Root + ".*." + kindDecided + ".*"}

// WhoAll is the census of every pipe: each receiver attached to any pipe
// answers on the request's reply subject with its pipe's token appended
// (reply.<token>), so that one request finds the pipes that have
// receivers and nothing kept.
const WhoAll = Root + "." + kindWho

// HeadsOfAll matches the heads of every pipe's kept items in Stream.
const HeadsOfAll = Root + ".*." + kindHead + ".*"

// OldHeadsOfAll matches the heads of kept items in the old layout's
// streams, one per pipe.
const OldHeadsOfAll = Root + ".*." + kindOldHead + ".*"

// Subjects holds the subjects of one pipe, computed once.
type Subjects struct {
	Name   string
	Token  string
	Stream string // the stream that keeps its items
	base   string // skypipe.<tok>.
	head   string // the kinds of its stored frames' subjects
	kept   string
}

// NewSubjects returns the subjects of a valid pipe name.
func NewSubjects(name string) Subjects {
	tok := Token(name)
	return Subjects{Name: name, Token: tok, Stream: Stream, base: Root + "." + tok + ".", head: kindHead, kept: kindKept}
}

// Old returns the pipe's subjects in the old layout (skypipe 0.x before
// the shared stream), where each pipe kept its items in a stream of its
// own, StreamName(name), on subjects whose kinds were "head" and "kept".
// Only the migration of such a stream reads it.
func (s Subjects) Old() Subjects {
	s.Stream, s.head, s.kept = StreamName(s.Name), kindOldHead, kindOldKept
	return s
}

// PipeOfHead returns the token and item id of a head subject in Stream.
func PipeOfHead(subject string) (tok, item string, ok bool) {
	rest, ok := strings.CutPrefix(subject, Root+".")
	if !ok {
		return "", "", false
	}
	tok, rest, ok = strings.Cut(rest, ".")
	if !ok {
		return "", "", false
	}
	item, ok = strings.CutPrefix(rest, kindHead+".")
	if !ok || !ValidItem(item) {
		return "", "", false
	}
	return tok, item, true
}

func (s Subjects) Live(item string) string { return s.base + kindLive + "." + item }
func (s Subjects) LiveAll() string         { return s.base + kindLive + ".*" }
func (s Subjects) Head(item string) string { return s.base + s.head + "." + item }
func (s Subjects) HeadAll() string         { return s.base + s.head + ".*" }
func (s Subjects) Kept(item string) string { return s.base + s.kept + "." + item }
func (s Subjects) KeptAll() string         { return s.base + s.kept + ".*" }

// Stored matches every stored frame of the pipe, heads and the rest.
func (s Subjects) Stored() string { return s.base + "*.*" }

// Claim is the filter of one item's stored frames: its head and the rest.
func (s Subjects) Claim(item string) string { return s.base + "*." + item }
func (s Subjects) Item(item string) string  { return s.base + kindItem + "." + item }
func (s Subjects) Roll() string             { return s.base + kindRoll }
func (s Subjects) Take() string             { return s.base + kindTake }
func (s Subjects) Who() string              { return s.base + kindWho }

// TakeReply is where a sender hears whether a taker takes its item: apart
// from Item, so that "no responders" to the offer is told apart from
// "no responders" to the roll call.
func (s Subjects) TakeReply(item string) string { return s.base + kindItem + "." + item + ".t" }
func (s Subjects) Join() string                 { return s.base + kindJoin }
func (s Subjects) Rcv(rid string) string        { return s.base + kindRcv + "." + rid }

// Decided is the subject of an item's decision record in DecisionStream.
func (s Subjects) Decided(item string) string { return s.base + kindDecided + "." + item }

// ValidItem tells whether id can be an item's id: one subject token, no
// wildcard, no space.
func ValidItem(id string) bool { return id != "" && !strings.ContainsAny(id, ".*> \t\r\n") }

// LastToken returns what follows the last '.' of a subject.
func LastToken(subject string) string {
	for i := len(subject) - 1; i >= 0; i-- {
		if subject[i] == '.' {
			return subject[i+1:]
		}
	}
	return subject
}
