package main

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"unicode/utf8"
)

// errBinaryTerminal: a receiver's stdout is a terminal, and the data is
// not text. Written out, it would garble the terminal (gzip refuses too).
var errBinaryTerminal = errors.New("refusing to write binary data to a terminal")

// sniffLen is how many bytes of the output are looked at, as git looks at
// the first 8000 bytes of a file to tell text from binary.
const sniffLen = 8000

// ttyGuard writes to a terminal only what looks like text: the first
// sniffLen bytes must hold no NUL byte and be valid UTF-8. On the first
// bytes that do not, it writes nothing and fails, so that the receiver
// gives the item back to the pipe.
type ttyGuard struct {
	w       io.Writer
	seen    int    // bytes looked at so far
	carry   []byte // the start of a UTF-8 sequence the last write cut
	refused atomic.Bool
}

func (g *ttyGuard) Write(p []byte) (int, error) {
	if g.seen < sniffLen && len(p) > 0 {
		look := p[:min(len(p), sniffLen-g.seen)]
		g.seen += len(look)
		var ok bool
		ok, g.carry = looksText(g.carry, look, g.seen < sniffLen)
		if !ok {
			g.refused.Store(true)
			return 0, errBinaryTerminal
		}
	}
	return g.w.Write(p)
}

// looksText tells whether carry+p reads as text: no NUL byte, valid UTF-8.
// With more to come, an incomplete UTF-8 sequence at the end is not held
// against it: it is returned, to be looked at with the next bytes.
func looksText(carry, p []byte, more bool) (bool, []byte) {
	b := append(carry, p...)
	if bytes.IndexByte(b, 0) >= 0 {
		return false, nil
	}
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			if len(b) < utf8.UTFMax && !utf8.FullRune(b) {
				if more {
					return true, append([]byte(nil), b...)
				}
				return true, nil // cut by the end of what is looked at
			}
			return false, nil
		}
		b = b[size:]
	}
	return true, nil
}
