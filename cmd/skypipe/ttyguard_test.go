package main

import (
	"bytes"
	"errors"
	"testing"
)

func TestTTYGuardRefusesBinaryWritesText(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string // what reaches the terminal
		refuse bool
	}{
		{name: "text", writes: []string{"hello\n"}, want: "hello\n"},
		{name: "UTF-8 text", writes: []string{"h\u00e9llo \u2713\n"}, want: "h\u00e9llo \u2713\n"},
		{name: "escape sequences are text", writes: []string{"\x1b[31mred\x1b[0m\n"}, want: "\x1b[31mred\x1b[0m\n"},
		{name: "a NUL byte", writes: []string{"a\x00b"}, refuse: true},
		{name: "not UTF-8", writes: []string{"caf\xe9\n"}, refuse: true},
		{name: "a rune cut across two writes", writes: []string{"caf\xc3", "\xa9\n"}, want: "caf\u00e9\n"},
		{name: "a cut rune that does not go on", writes: []string{"caf\xc3", "x\n"}, want: "caf\xc3", refuse: true},
		{name: "binary after text, within the first bytes", writes: []string{"text\n", "\x00\x01"}, want: "text\n", refuse: true},
		{name: "binary beyond the first bytes", writes: []string{string(bytes.Repeat([]byte("a"), sniffLen)), "\x00"}, want: string(bytes.Repeat([]byte("a"), sniffLen)) + "\x00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			g := &ttyGuard{w: &out}
			var err error
			for _, w := range tc.writes {
				var n int
				n, err = g.Write([]byte(w))
				if err != nil {
					if n != 0 {
						t.Errorf("a refused write wrote %d bytes", n)
					}
					break
				}
			}
			if got := errors.Is(err, errBinaryTerminal); got != tc.refuse || g.refused.Load() != tc.refuse {
				t.Errorf("refused: %v (%v), want %v", got, err, tc.refuse)
			}
			if out.String() != tc.want {
				t.Errorf("the terminal got %q, want %q", out.String(), tc.want)
			}
		})
	}
}
