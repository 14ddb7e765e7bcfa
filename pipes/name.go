package pipes

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest pipe name, in bytes of UTF-8.
const MaxNameLen = 255

// DefaultName is the name of the pipe used when none is given.
const DefaultName = ""

// escape is the byte that starts an escape sequence in a subject token. It is
// always followed by two upper-case hex digits, so the token of the default
// pipe (a lone escape byte) is one no other name can produce.
const escape = '_'

// defaultToken is the subject token of the default pipe.
const defaultToken = "_"

// ValidateName reports whether name can be a pipe name: valid UTF-8, no
// control characters, at most MaxNameLen bytes. The errors wrap ErrInvalidName.
func ValidateName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes long, the limit is %d", ErrInvalidName, len(name), MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidName, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %q holds the control character %U", ErrInvalidName, name, r)
		}
	}
	return nil
}

// Token maps a valid pipe name to the single subject token that stands for
// it. ASCII letters, digits and '-' stand for themselves; every other byte,
// '_' included, becomes '_' and two hex digits. The mapping is injective, and
// its output never holds '.', '*', '>' or white space, so a name can never act
// as a subject separator or wildcard.
func Token(name string) string {
	if name == DefaultName {
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
		return DefaultName, nil
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c != escape {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("%w: token %q ends inside an escape", ErrInvalidName, tok)
		}
		var v byte
		for _, h := range []byte{tok[i+1], tok[i+2]} {
			switch {
			case '0' <= h && h <= '9':
				v = v<<4 | (h - '0')
			case 'A' <= h && h <= 'F':
				v = v<<4 | (h - 'A' + 10)
			default:
				return "", fmt.Errorf("%w: token %q has a bad escape", ErrInvalidName, tok)
			}
		}
		b.WriteByte(v)
		i += 2
	}
	name := b.String()
	if Token(name) != tok {
		return "", fmt.Errorf("%w: token %q is not canonical", ErrInvalidName, tok)
	}
	return name, nil
}

// streamName is the JetStream stream that keeps a pipe's items. Stream names
// become directory names on the satellite's disk, where case may not count,
// so they are a digest of the name rather than its token.
func streamName(name string) string {
	sum := sha256.Sum256([]byte(name))
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20])
	return streamPrefix + enc
}
