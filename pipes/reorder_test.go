package pipes

import (
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/internal/wire"
)

func TestReorderPutsKeptFramesBackInOrder(t *testing.T) {
	frame := func(off uint64, n int, end bool) *nats.Msg {
		var flags byte
		if end {
			flags = wire.FlagEnd
		}
		return &nats.Msg{Data: wire.Seal(make([]byte, wire.HeaderLen+n), flags, off)}
	}
	head := func(off uint64) *nats.Msg { m := frame(off, 0, false); m.Subject = "h"; return m }
	for _, tc := range []struct {
		name    string
		in      []*nats.Msg
		limit   int
		want    []uint64 // offsets handed on, in order
		holding bool
	}{
		{"in order", []*nats.Msg{head(0), frame(0, 4, false), frame(4, 4, false), frame(8, 0, true)}, 4, []uint64{0, 0, 4, 8}, false},
		{"later frames stored first", []*nats.Msg{head(0), frame(0, 4, false), frame(8, 4, false), frame(12, 0, true), frame(4, 4, false)}, 4, []uint64{0, 0, 4, 8, 12}, false},
		{"a frame stored twice", []*nats.Msg{head(0), frame(0, 4, false), frame(0, 4, false), frame(4, 0, true)}, 4, []uint64{0, 0, 0, 4}, false},
		{"kept from a later byte", []*nats.Msg{head(100), frame(104, 4, false), frame(100, 4, false)}, 4, []uint64{100, 100, 104}, false},
		{"the end before a gap that does not fill", []*nats.Msg{head(0), frame(0, 4, false), frame(8, 0, true)}, 4, []uint64{0, 0}, true},
		{"more out of order than the limit", []*nats.Msg{head(0), frame(4, 4, false), frame(8, 4, false), frame(12, 4, false)}, 2, []uint64{0, 4, 8, 12}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := reorder{limit: tc.limit}
			var got []uint64
			for _, m := range tc.in {
				for _, out := range o.add(m, m.Subject == "h") {
					off, _, _ := wire.Place(out.Data)
					got = append(got, off)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("handed on %v, want %v", got, tc.want)
			}
			if o.holding() != tc.holding {
				t.Errorf("holding = %v, want %v", o.holding(), tc.holding)
			}
		})
	}
}
