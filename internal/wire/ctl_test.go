package wire

import (
	"bytes"
	"testing"
)

func TestControlRoundTrip(t *testing.T) {
	ack, ok := ParseCtl(AppendAck(nil, 10, 25, "RID"))
	if !ok || ack.Kind != Ack || ack.Offset != 10 || ack.Accepted != 25 || ack.RID != "RID" {
		t.Errorf("ack: got %+v, %v", ack, ok)
	}
	if low, _ := ParseCtl(AppendAck(nil, 30, 20, "RID")); low.Accepted != 30 {
		t.Errorf("an ack taking in less than it wrote: accepted %d, want 30", low.Accepted)
	}
	for _, kind := range []byte{Join, Claim, Leave, Take, Pass, Resend} {
		b := AppendCtl(nil, kind, 1<<33+5, "RID123")
		m, ok := ParseCtl(b)
		if !ok || m.Kind != kind || m.Offset != 1<<33+5 || m.RID != "RID123" {
			t.Errorf("kind %c: got %+v, %v", kind, m, ok)
		}
	}
	for _, bad := range [][]byte{nil, {Ack}, AppendCtl(nil, 'Z', 0, "r"), AppendCtl(nil, Join, 0, ""), AppendCtl(nil, Ack, 0, "r")} {
		if _, ok := ParseCtl(bad); ok {
			t.Errorf("ParseCtl(%q) accepted", bad)
		}
	}
}

// FuzzParseCtl: whatever anyone with the token sends to a sender's control
// inbox either parses into a message that encodes back to the same bytes,
// or is refused; nothing panics.
func FuzzParseCtl(f *testing.F) {
	f.Add(AppendAck(nil, 1, 2, "rid"))
	f.Add(AppendCtl(nil, Join, 0, "rid"))
	f.Add(AppendCtl(nil, Leave, 99, "x"))
	f.Add([]byte{Ack, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := ParseCtl(b)
		if !ok {
			return
		}
		if m.RID == "" {
			t.Fatalf("accepted a message without a receiver id: %q", b)
		}
		var again []byte
		switch m.Kind {
		case Ack:
			if m.Accepted < m.Offset {
				t.Fatalf("ack accepted %d below written %d", m.Accepted, m.Offset)
			}
			again = AppendAck(nil, m.Offset, m.Accepted, m.RID)
			if m.Accepted != m.Offset || !bytes.Equal(again, b) {
				return // an ack whose taken-in offset was raised to its written one
			}
		case Join, Claim, Leave, Take, Pass, Resend:
			again = AppendCtl(nil, m.Kind, m.Offset, m.RID)
		default:
			t.Fatalf("accepted kind %q", m.Kind)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("%q parses but encodes back as %q", b, again)
		}
	})
}
