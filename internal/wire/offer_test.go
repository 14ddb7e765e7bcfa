package wire

import (
	"bytes"
	"errors"
	"testing"
)

// An offer carries a small item whole, as its live frames, or nothing; a
// payload that is not a whole item is refused, never half read.
func TestParseOfferTakesOnlyAWholeItem(t *testing.T) {
	frame := func(flags byte, off uint64, data string) []byte {
		return Seal(append(make([]byte, HeaderLen), data...), flags, off)
	}
	offer := func(frames ...[]byte) []byte {
		b := []byte{OfferData}
		for _, f := range frames {
			b = appendOfferFrame(b, f)
		}
		return b
	}
	big := bytes.Repeat([]byte("x"), MaxOffer)
	for _, tc := range []struct {
		name   string
		b      []byte
		want   string // the item's bytes, if it parses
		frames int
		ok     bool
		bad    bool
	}{
		{name: "empty offer", b: nil},
		{name: "item", b: AppendOffer(nil, []byte("fire\n")), want: "fire\n", frames: 2, ok: true},
		{name: "empty item", b: AppendOffer(nil, nil), frames: 1, ok: true},
		{name: "largest item", b: AppendOffer(nil, big), want: string(big), frames: 2, ok: true},
		{name: "too large", b: offer(frame(0, 0, string(big)), frame(0, MaxOffer, "y"), frame(FlagEnd, MaxOffer+1, "")), bad: true},
		{name: "two frames", b: offer(frame(FlagLineStart, 0, "ab"), frame(0, 2, "cd\n"), frame(FlagEnd, 5, "")), want: "abcd\n", frames: 3, ok: true},
		{name: "gap", b: offer(frame(0, 0, "ab"), frame(0, 3, "d"), frame(FlagEnd, 4, "")), bad: true},
		{name: "wrong length", b: offer(frame(0, 0, "ab"), frame(FlagEnd, 3, "")), bad: true},
		{name: "no end", b: offer(frame(0, 0, "ab")), bad: true},
		{name: "after the end", b: append(AppendOffer(nil, []byte("a")), 0), bad: true},
		{name: "abort", b: offer(frame(FlagEnd|FlagAbort, 0, "")), bad: true},
		{name: "kept", b: offer(frame(FlagKept, 0, "a"), frame(FlagEnd, 1, "")), bad: true},
		{name: "empty data frame", b: offer(frame(0, 0, ""), frame(FlagEnd, 0, "")), bad: true},
		{name: "other kind", b: []byte{'X', 0}, bad: true},
		{name: "cut length", b: []byte{OfferData, 0, 0}, bad: true},
		{name: "cut frame", b: AppendOffer(nil, []byte("fire"))[:10], bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames, ok, err := ParseOffer(tc.b)
			if tc.bad {
				if err == nil || !errors.Is(err, ErrCorrupt) || ok || frames != nil {
					t.Fatalf("ParseOffer = %d frames, %v, %v; want ErrCorrupt", len(frames), ok, err)
				}
				return
			}
			if err != nil || ok != tc.ok || len(frames) != tc.frames {
				t.Fatalf("ParseOffer = %d frames, %v, %v; want %d, %v", len(frames), ok, err, tc.frames, tc.ok)
			}
			var got []byte
			for _, raw := range frames {
				f, err := Parse(raw)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, f.Data...)
			}
			if string(got) != tc.want {
				t.Fatalf("item %q, want %q", got, tc.want)
			}
		})
	}
	damaged := AppendOffer(nil, []byte("fire\n"))
	damaged[len(damaged)-HeaderLen-1] ^= 1 // a byte of the data frame's chunk
	if _, _, err := ParseOffer(damaged); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a damaged frame: %v, want ErrCorrupt", err)
	}
}

// FuzzParseOffer: whatever anyone with the token offers a taker is a whole
// item of at most MaxOffer bytes, in order, ending with its length, or is
// refused; nothing panics.
func FuzzParseOffer(f *testing.F) {
	f.Add([]byte(nil))
	f.Add(AppendOffer(nil, []byte("fire\n")))
	f.Add(AppendOffer(nil, nil))
	f.Add([]byte{OfferData, 0, 0, 0, 16})
	f.Fuzz(func(t *testing.T, b []byte) {
		frames, ok, err := ParseOffer(b)
		if err != nil || !ok {
			if ok || frames != nil {
				t.Fatalf("refused, yet %d frames, ok %v", len(frames), ok)
			}
			return
		}
		var item []byte
		for i, raw := range frames {
			fr, err := Parse(raw)
			if err != nil {
				t.Fatalf("frame %d does not parse: %v", i, err)
			}
			if fr.Offset != uint64(len(item)) {
				t.Fatalf("frame %d at %d, want %d", i, fr.Offset, len(item))
			}
			if fr.End() != (i == len(frames)-1) || fr.Aborted() || fr.Kept() {
				t.Fatalf("frame %d flagged %#x", i, fr.Flags)
			}
			item = append(item, fr.Data...)
		}
		if len(item) > MaxOffer {
			t.Fatalf("an offer of %d bytes", len(item))
		}
	})
}
