package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func seal(flags byte, off uint64, data string) []byte {
	buf := make([]byte, HeaderLen+len(data))
	copy(buf[HeaderLen:], data)
	return Seal(buf, flags, off)
}

func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags byte
		off   uint64
		data  string
	}{
		{"first chunk", FlagLineStart, 0, "hello\n"},
		{"later chunk", 0, 1 << 40, "world"},
		{"kept live chunk", FlagKept, 7, "x"},
		{"end", FlagEnd, 12, ""},
		{"empty item end", FlagEnd | FlagKept, 0, ""},
		{"abort", FlagEnd | FlagAbort, 99, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(seal(tc.flags, tc.off, tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if f.Flags != tc.flags || f.Offset != tc.off || string(f.Data) != tc.data {
				t.Fatalf("got flags %b offset %d data %q", f.Flags, f.Offset, f.Data)
			}
			if f.End() != (tc.flags&FlagEnd != 0) || f.Kept() != (tc.flags&FlagKept != 0) || f.LineStart() != (tc.flags&FlagLineStart != 0) {
				t.Fatalf("flag accessors disagree with %b", tc.flags)
			}
		})
	}
}

func TestFrameDamageIsDetected(t *testing.T) {
	good := seal(0, 42, "some data")
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:5] }},
		{"version", func(b []byte) []byte { b[0] = 9; return b }},
		{"unknown flag", func(b []byte) []byte { b[1] |= 0x80; return b }},
		{"reserved", func(b []byte) []byte { b[2] = 1; return b }},
		{"offset", func(b []byte) []byte { b[15]++; return b }},
		{"data", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"checksum", func(b []byte) []byte { b[5] ^= 1; return b }},
		{"truncated data", func(b []byte) []byte { return b[:len(b)-1] }},
		{"end with data", func(b []byte) []byte { return seal(FlagEnd, 0, "x") }},
		{"abort on data", func(b []byte) []byte { return seal(FlagAbort, 0, "x") }},
		{"oversized", func(b []byte) []byte { return seal(0, 0, strings.Repeat("x", MaxChunk+1)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.damage(bytes.Clone(good)))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

// FuzzParse: any bytes a client with the satellite's token may publish
// either parse into a frame that seals back to the same bytes, or fail
// with ErrCorrupt; nothing panics.
func FuzzParse(f *testing.F) {
	f.Add(seal(FlagLineStart, 0, "hello\n"))
	f.Add(seal(FlagEnd|FlagAbort, 7, ""))
	f.Add([]byte("not a frame at all"))
	f.Add(make([]byte, HeaderLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Parse: %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if len(fr.Data) > MaxChunk || (fr.End() && len(fr.Data) > 0) || (fr.Aborted() && !fr.End()) {
			t.Fatalf("Parse accepted an impossible frame: flags %b, %d bytes", fr.Flags, len(fr.Data))
		}
		again := Seal(append(make([]byte, HeaderLen), fr.Data...), fr.Flags, fr.Offset)
		if !bytes.Equal(again, b) {
			t.Fatalf("a frame that parses does not seal back to itself")
		}
	})
}
