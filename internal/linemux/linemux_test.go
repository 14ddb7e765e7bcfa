package linemux

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1000, 0)

var lim = Limits{HoldLimit: 16, MaxHeld: 64, LineStall: time.Second}

// op is one step of a scenario: a write, an end, a drop or a tick.
type op struct {
	at     time.Duration // since t0
	stream string
	write  string
	end    bool
	drop   bool
	tick   bool
}

func run(t *testing.T, live map[string]bool, ops []op) (string, *Mux, map[string]*Stream) {
	t.Helper()
	var out bytes.Buffer
	m := New(&out, lim)
	streams := map[string]*Stream{}
	get := func(id string) *Stream {
		if s := streams[id]; s != nil {
			return s
		}
		s := &Stream{ID: id, Live: live[id]}
		streams[id] = s
		return s
	}
	for i, o := range ops {
		now := t0.Add(o.at)
		var err error
		switch {
		case o.tick:
			err = m.Tick(now)
		case o.end:
			err = m.End(get(o.stream), now)
		case o.drop:
			_, err = m.Drop(get(o.stream), true, now)
		default:
			err = m.Write(get(o.stream), []byte(o.write), now)
		}
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	return out.String(), m, streams
}

func TestLinesNeverCutIntoEachOther(t *testing.T) {
	for _, tc := range []struct {
		name  string
		live  map[string]bool
		ops   []op
		want  string
		ended []string
	}{
		{
			name: "one item writes straight through",
			ops:  []op{{stream: "a", write: "x\ny"}, {stream: "a", write: "z\n"}},
			want: "x\nyz\n",
		},
		{
			name: "a line waits for the open one to end",
			ops: []op{
				{stream: "a", write: "a1\na2"},
				{stream: "b", write: "b1\n"},
				{stream: "a", write: "-end\n"},
			},
			want: "a1\na2-end\nb1\n",
		},
		{
			name: "waiting items write only whole lines while others wait",
			ops: []op{
				{stream: "a", write: "a1"},
				{stream: "b", write: "b1\nb2"},
				{stream: "c", write: "c1\n"},
				{stream: "a", write: "\n"},
				{stream: "b", write: "\n"},
			},
			want: "a1\nb1\nc1\nb2\n",
		},
		{
			name: "a stalled line is cut after LineStall",
			ops: []op{
				{stream: "a", write: "half"},
				{stream: "b", write: "b1\n"},
				{at: time.Second / 2, tick: true},
				{at: time.Second, tick: true},
			},
			want: "half\nb1\n",
		},
		{
			name: "a line longer than HoldLimit is cut",
			ops: []op{
				{stream: "a", write: strings.Repeat("x", 17)},
				{stream: "b", write: "b1\n"},
				{tick: true},
			},
			want: strings.Repeat("x", 17) + "\nb1\n",
		},
		{
			name: "a kept item does not wait beyond HoldLimit",
			ops: []op{
				{stream: "a", write: "open"},
				{stream: "k", write: strings.Repeat("k", 10)},
				{stream: "k", write: strings.Repeat("k", 10) + "\n"},
			},
			want: "open\n" + strings.Repeat("k", 20) + "\n",
		},
		{
			name: "a live item waits beyond HoldLimit up to MaxHeld",
			live: map[string]bool{"l": true},
			ops: []op{
				{stream: "a", write: "open"},
				{stream: "l", write: strings.Repeat("l", 10)},
				{stream: "l", write: strings.Repeat("l", 10) + "\n"},
				{stream: "a", write: "\n"},
			},
			want: "open\n" + strings.Repeat("l", 20) + "\n",
		},
		{
			name: "an end behind waiting bytes ends the item once they are out",
			ops: []op{
				{stream: "a", write: "open"},
				{stream: "b", write: "b1\n"},
				{stream: "b", end: true},
				{stream: "a", write: "\n"},
			},
			want:  "open\nb1\n",
			ended: []string{"b"},
		},
		{
			name: "an item ending mid-line frees the output",
			ops: []op{
				{stream: "a", write: "no newline"},
				{stream: "b", write: "b1\n"},
				{stream: "a", end: true},
			},
			want:  "no newlineb1\n",
			ended: []string{"a"},
		},
		{
			name: "a dropped item's open line is closed",
			ops: []op{
				{stream: "a", write: "half"},
				{stream: "b", write: "b1\n"},
				{stream: "a", drop: true},
			},
			want: "half\nb1\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, m, _ := run(t, tc.live, tc.ops)
			if got != tc.want {
				t.Fatalf("output %q, want %q", got, tc.want)
			}
			var ended []string
			for _, s := range m.Ended() {
				ended = append(ended, s.ID)
			}
			if strings.Join(ended, ",") != strings.Join(tc.ended, ",") {
				t.Fatalf("ended %v, want %v", ended, tc.ended)
			}
			if m.Bytes() != uint64(len(tc.want)) {
				t.Fatalf("Bytes() = %d, wrote %d", m.Bytes(), len(tc.want))
			}
		})
	}
}

func TestAcksCountWaitingBytesAsTakenUpToHoldLimit(t *testing.T) {
	_, m, s := run(t, map[string]bool{"a": true, "b": true}, []op{
		{stream: "a", write: "open"},
		{stream: "b", write: strings.Repeat("b", 10)},
		{stream: "b", write: strings.Repeat("b", 10)},
	})
	acks := m.Acks()
	if len(acks) != 2 {
		t.Fatalf("acks %+v, want one for a and one (the latest) for b", acks)
	}
	if a := acks[0]; a.Stream != s["a"] || a.Written != 4 || a.Taken != 4 {
		t.Errorf("ack of a: %+v", a)
	}
	if b := acks[1]; b.Stream != s["b"] || b.Written != 0 || b.Taken != uint64(lim.HoldLimit) {
		t.Errorf("ack of b: written %d taken %d, want 0 and %d", b.Written, b.Taken, lim.HoldLimit)
	}
	if len(m.Acks()) != 0 {
		t.Error("Acks returned the same acks twice")
	}
}

func TestKeptItemsAreNotAcked(t *testing.T) {
	_, m, _ := run(t, nil, []op{{stream: "k", write: "x\n"}})
	if acks := m.Acks(); len(acks) != 0 {
		t.Fatalf("acks for a kept item: %+v", acks)
	}
}

type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, errors.New("disk full") }

func TestOutputErrorNamesTheItem(t *testing.T) {
	m := New(failingWriter{}, lim)
	s := &Stream{ID: "x"}
	err := m.Write(s, []byte("data"), t0)
	var oe *OutputError
	if !errors.As(err, &oe) || oe.Stream != s {
		t.Fatalf("err = %v, want an OutputError of x", err)
	}
	if err := m.Write(&Stream{ID: "gone", ended: true}, []byte("x"), t0); err == nil {
		t.Fatal("a write to an ended item was accepted")
	}
}
