package wire

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// escape is the byte that starts an escape sequence in a subject token. It is
// always followed by two upper-case hex digits, so the token of the default
// pipe (a lone escape byte) is one no other name can produce.
const escape = '_'

// defaultToken is the subject token of the default pipe ("").
const defaultToken = "_"

// ErrBadToken: a subject token that Token cannot produce.
var ErrBadToken = errors.New("not a pipe token")

// Token maps a pipe name to the single subject token that stands for it.
// ASCII letters, digits and '-' stand for themselves; every other byte, '_'
// included, becomes '_' and two hex digits. The mapping is injective, and
// its output never holds '.', '*', '>' or white space, so a name can never
// act as a subject separator or wildcard.
func Token(name string) string {
	if name == "" {
		return defaultToken
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '-' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte(escape)
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xF])
	}
	return b.String()
}

// NameFromToken inverts Token. It fails for a token Token cannot produce.
func NameFromToken(tok string) (string, error) {
	if tok == defaultToken {
		return "", nil
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c != escape {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("%w: %q ends inside an escape", ErrBadToken, tok)
		}
		var v byte
		for _, h := range []byte{tok[i+1], tok[i+2]} {
			switch {
			case '0' <= h && h <= '9':
				v = v<<4 | (h - '0')
			case 'A' <= h && h <= 'F':
				v = v<<4 | (h - 'A' + 10)
			default:
				return "", fmt.Errorf("%w: %q has a bad escape", ErrBadToken, tok)
			}
		}
		b.WriteByte(v)
		i += 2
	}
	name := b.String()
	if Token(name) != tok {
		return "", fmt.Errorf("%w: %q is not canonical", ErrBadToken, tok)
	}
	return name, nil
}

// StreamName is the JetStream stream that keeps a pipe's items. Stream
// names become directory names on the satellite's disk, where case may not
// count, so they are a digest of the name rather than its token.
func StreamName(name string) string {
	sum := sha256.Sum256([]byte(name))
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20])
	return StreamPrefix + enc
}
