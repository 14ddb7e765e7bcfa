package pipes

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func seal(flags byte, off uint64, data string) []byte {
	buf := make([]byte, frameHeaderLen+len(data))
	copy(buf[frameHeaderLen:], data)
	return sealFrame(buf, flags, off)
}

func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags byte
		off   uint64
		data  string
	}{
		{"first chunk", flagLineStart, 0, "hello\n"},
		{"later chunk", 0, 1 << 40, "world"},
		{"kept live chunk", flagKept, 7, "x"},
		{"end", flagEnd, 12, ""},
		{"empty item end", flagEnd | flagKept, 0, ""},
		{"abort", flagEnd | flagAbort, 99, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseFrame(seal(tc.flags, tc.off, tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if f.flags != tc.flags || f.offset != tc.off || string(f.data) != tc.data {
				t.Fatalf("got flags %b offset %d data %q", f.flags, f.offset, f.data)
			}
			if f.end() != (tc.flags&flagEnd != 0) || f.kept() != (tc.flags&flagKept != 0) || f.lineStart() != (tc.flags&flagLineStart != 0) {
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
		{"end with data", func(b []byte) []byte { return seal(flagEnd, 0, "x") }},
		{"abort on data", func(b []byte) []byte { return seal(flagAbort, 0, "x") }},
		{"oversized", func(b []byte) []byte { return seal(0, 0, strings.Repeat("x", chunkSize+1)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFrame(tc.damage(bytes.Clone(good)))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestControlRoundTrip(t *testing.T) {
	ack, ok := parseCtl(appendAck(nil, 10, 25, "RID"))
	if !ok || ack.kind != ctlAck || ack.offset != 10 || ack.accepted != 25 || ack.rid != "RID" {
		t.Errorf("ack: got %+v, %v", ack, ok)
	}
	for _, kind := range []byte{ctlJoin, ctlClaim, ctlLeave} {
		b := appendCtl(nil, kind, 1<<33+5, "RID123")
		m, ok := parseCtl(b)
		if !ok || m.kind != kind || m.offset != 1<<33+5 || m.rid != "RID123" {
			t.Errorf("kind %c: got %+v, %v", kind, m, ok)
		}
	}
	for _, bad := range [][]byte{nil, {ctlAck}, appendCtl(nil, 'Z', 0, "r"), appendCtl(nil, ctlJoin, 0, ""), appendCtl(nil, ctlAck, 0, "r")} {
		if _, ok := parseCtl(bad); ok {
			t.Errorf("parseCtl(%q) accepted", bad)
		}
	}
}

func TestRingKeepsTheLastWindow(t *testing.T) {
	var r ring
	data := make([]byte, 3*chunkSize)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var off uint64
	for off < uint64(ringSize)*2 {
		r.put(off, data)
		off += uint64(len(data))
	}
	// Everything from off-ringSize on can be read back.
	from := off - ringSize + 100
	p := make([]byte, chunkSize)
	n := r.get(from, p)
	if n == 0 {
		t.Fatal("nothing read")
	}
	for i := 0; i < n; i++ {
		want := data[(from+uint64(i))%uint64(len(data))]
		if p[i] != want {
			t.Fatalf("byte %d: got %d want %d", from+uint64(i), p[i], want)
		}
	}
}
