package pipes

// The subjects of one pipe, all under "skypipe.<token>". See doc.go for
// what travels on each.
const (
	subjectRoot  = "skypipe"
	streamPrefix = "SKYPIPE_"

	kindLive    = "live" // live chunks of an item: skypipe.<tok>.live.<item>
	kindHead    = "head" // first kept chunk of an item (stream)
	kindKept    = "kept" // further kept chunks of an item (stream)
	kindItem    = "item" // a sender's control inbox: acks, claims, leaves, pings
	kindRoll    = "roll" // roll call: who is attached?
	kindJoin    = "join" // a receiver announcing itself, or leaving
	kindRcv     = "rcv"  // a receiver's own inbox: pings
	metaName    = "skypipe.name"
	metaReceive = "skypipe.receiver"
)

// subjects holds the subjects of one pipe, computed once.
type subjects struct {
	name   string
	token  string
	stream string
	base   string // skypipe.<tok>.
}

func newSubjects(name string) subjects {
	tok := Token(name)
	return subjects{name: name, token: tok, stream: streamName(name), base: subjectRoot + "." + tok + "."}
}

func (s subjects) live(item string) string { return s.base + kindLive + "." + item }
func (s subjects) liveAll() string         { return s.base + kindLive + ".*" }
func (s subjects) head(item string) string { return s.base + kindHead + "." + item }
func (s subjects) headAll() string         { return s.base + kindHead + ".*" }
func (s subjects) kept(item string) string { return s.base + kindKept + "." + item }
func (s subjects) keptAll() string         { return s.base + kindKept + ".*" }
func (s subjects) claim(item string) string {
	return s.base + "*." + item // head and kept chunks of one item
}
func (s subjects) item(item string) string { return s.base + kindItem + "." + item }
func (s subjects) roll() string            { return s.base + kindRoll }
func (s subjects) join() string            { return s.base + kindJoin }
func (s subjects) rcv(rid string) string   { return s.base + kindRcv + "." + rid }

// lastToken returns what follows the last '.' of a subject.
func lastToken(subject string) string {
	for i := len(subject) - 1; i >= 0; i-- {
		if subject[i] == '.' {
			return subject[i+1:]
		}
	}
	return subject
}

// LiveSubject is the subject the live frames of an item of pipe name travel
// on: for tools and tests that watch or probe a pipe from outside.
func LiveSubject(name, item string) string { return newSubjects(name).live(item) }

// KeptSubjects are the subjects an item of pipe name is stored on when it
// is kept: its head (the first frame) and the rest of its frames.
func KeptSubjects(name, item string) (head, rest string) {
	s := newSubjects(name)
	return s.head(item), s.kept(item)
}

// StreamName is the JetStream stream that keeps pipe name's items.
func StreamName(name string) string { return newSubjects(name).stream }
