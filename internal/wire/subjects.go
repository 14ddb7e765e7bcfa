package wire

// The subjects of one pipe, all under "skypipe.<token>". See pipes/doc.go
// for what travels on each.
const (
	Root         = "skypipe"
	StreamPrefix = "SKYPIPE_"

	kindLive = "live" // live chunks of an item: skypipe.<tok>.live.<item>
	KindHead = "head" // first kept chunk of an item (stream)
	kindKept = "kept" // further kept chunks of an item (stream)
	kindItem = "item" // a sender's control inbox: acks, claims, leaves, pings
	kindRoll = "roll" // roll call: which listeners are attached?
	kindTake = "take" // offers of new items, to one taker (a queue group)
	kindWho  = "who"  // census: every receiver attached answers
	kindJoin = "join" // a receiver announcing itself, or leaving
	kindRcv  = "rcv"  // a receiver's own inbox: pings

	// MetaName is the stream metadata key holding the pipe's name.
	MetaName = "skypipe.name"
	// MetaReceiver is the consumer metadata key holding the claimant's id.
	MetaReceiver = "skypipe.receiver"
)

// Subjects holds the subjects of one pipe, computed once.
type Subjects struct {
	Name   string
	Token  string
	Stream string
	base   string // skypipe.<tok>.
}

// NewSubjects returns the subjects of a valid pipe name.
func NewSubjects(name string) Subjects {
	tok := Token(name)
	return Subjects{Name: name, Token: tok, Stream: StreamName(name), base: Root + "." + tok + "."}
}

func (s Subjects) Live(item string) string { return s.base + kindLive + "." + item }
func (s Subjects) LiveAll() string         { return s.base + kindLive + ".*" }
func (s Subjects) Head(item string) string { return s.base + KindHead + "." + item }
func (s Subjects) HeadAll() string         { return s.base + KindHead + ".*" }
func (s Subjects) Kept(item string) string { return s.base + kindKept + "." + item }
func (s Subjects) KeptAll() string         { return s.base + kindKept + ".*" }

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

// LastToken returns what follows the last '.' of a subject.
func LastToken(subject string) string {
	for i := len(subject) - 1; i >= 0; i-- {
		if subject[i] == '.' {
			return subject[i+1:]
		}
	}
	return subject
}
