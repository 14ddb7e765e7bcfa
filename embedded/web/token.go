package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/skypipe/skypipe/pipes"
)

// A narrow token lets its holder send to some pipes or take from some,
// over the HTTP face only. It is signed claims:
//
//	spn1.<claims, base64url JSON>.<HMAC-SHA256 of "spn1.<claims>", base64url>
//
// The signing key is derived from the satellite's token, so whoever holds
// that token (the satellite, and the machines that have full access anyway)
// can mint one, and a narrow token's holder cannot make or widen one. The
// satellite stores nothing per token; rotating the satellite's token (setup
// ssh --rotate) revokes every narrow token, and a token may carry an expiry.
//
// Narrow tokens do not open the NATS listeners: kept items of many pipes may
// share JetStream streams, so per-pipe NATS permissions cannot be relied on.
// nats-server refuses them as any wrong token, and skypipe clients say what
// such a token is for before they dial (IsNarrow).

// narrowPrefix starts every narrow token and versions its format.
const narrowPrefix = "spn1."

// keyLabel derives the signing key from the satellite's token.
const keyLabel = "skypipe narrow tokens v1"

// Errors of narrow tokens.
var (
	// ErrBadToken: the token is not one this satellite signed.
	ErrBadToken = errors.New("not a token of this satellite")
	// ErrExpired: the narrow token's time is over.
	ErrExpired = errors.New("the token has expired")
)

// Scope is what a narrow token allows.
type Scope struct {
	// Send and Recv list the pipes it may send to and take from: names,
	// or a prefix followed by '*' ("ci-*"). Taking includes following
	// and dropping the pipe's kept items.
	Send []string
	Recv []string
	// Expires, if not zero, is when the token stops working.
	Expires time.Time
	// ID tells tokens apart in the satellite's log, which never shows the
	// token itself.
	ID string
}

type claims struct {
	Send    []string `json:"s,omitempty"`
	Recv    []string `json:"r,omitempty"`
	Expires int64    `json:"x,omitempty"`
	ID      string   `json:"i"`
}

// IsNarrow tells whether tok has the form of a narrow token.
func IsNarrow(tok string) bool { return strings.HasPrefix(tok, narrowPrefix) }

// CheckPattern validates a pipe name or a prefix ending in '*'.
func CheckPattern(p string) error {
	return pipes.ValidateName(strings.TrimSuffix(p, "*"))
}

// Mint signs a narrow token for scope with the satellite's token.
func Mint(satToken string, s Scope) (string, error) {
	if satToken == "" {
		return "", errors.New("a narrow token needs a satellite with a token")
	}
	if IsNarrow(satToken) {
		return "", errors.New("a narrow token cannot mint another: use the satellite's token")
	}
	if len(s.Send) == 0 && len(s.Recv) == 0 {
		return "", errors.New("a narrow token needs at least one pipe to send to or take from")
	}
	for _, p := range slices.Concat(s.Send, s.Recv) {
		if err := CheckPattern(p); err != nil {
			return "", fmt.Errorf("pipe %q: %w", p, err)
		}
	}
	if s.ID == "" {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		s.ID = hex.EncodeToString(b[:])
	}
	c := claims{Send: s.Send, Recv: s.Recv, ID: s.ID}
	if !s.Expires.IsZero() {
		c.Expires = s.Expires.Unix()
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := narrowPrefix + base64.RawURLEncoding.EncodeToString(body)
	return signed + "." + base64.RawURLEncoding.EncodeToString(sign(satToken, signed)), nil
}

// ParseNarrow checks a narrow token's signature and expiry against the
// satellite's token and returns its scope.
func ParseNarrow(satToken, tok string, now time.Time) (Scope, error) {
	if satToken == "" || !IsNarrow(tok) {
		return Scope{}, ErrBadToken
	}
	i := strings.LastIndexByte(tok, '.')
	if i <= len(narrowPrefix) {
		return Scope{}, ErrBadToken
	}
	mac, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || !hmac.Equal(mac, sign(satToken, tok[:i])) {
		return Scope{}, ErrBadToken
	}
	body, err := base64.RawURLEncoding.DecodeString(tok[len(narrowPrefix):i])
	if err != nil {
		return Scope{}, ErrBadToken
	}
	var c claims
	if err := json.Unmarshal(body, &c); err != nil {
		return Scope{}, ErrBadToken
	}
	s := Scope{Send: c.Send, Recv: c.Recv, ID: c.ID}
	if c.Expires != 0 {
		s.Expires = time.Unix(c.Expires, 0)
		if !now.Before(s.Expires) {
			return s, fmt.Errorf("%w (%s)", ErrExpired, s.Expires.UTC().Format(time.RFC3339))
		}
	}
	return s, nil
}

func sign(satToken, signed string) []byte {
	k := hmac.New(sha256.New, []byte(satToken))
	k.Write([]byte(keyLabel))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// Direction is what a request does with a pipe.
type Direction int

// The directions a narrow token grants.
const (
	Sending Direction = iota
	Taking
)

// Allows tells whether the scope lets its holder act on pipe name.
func (s Scope) Allows(d Direction, name string) bool {
	list := s.Send
	if d == Taking {
		list = s.Recv
	}
	for _, p := range list {
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(name, prefix) || p == name {
			return true
		}
	}
	return false
}

// Covers tells whether the scope names pipe name in either direction.
func (s Scope) Covers(name string) bool { return s.Allows(Sending, name) || s.Allows(Taking, name) }

// String says what the scope allows, for people.
func (s Scope) String() string {
	var parts []string
	if len(s.Send) > 0 {
		parts = append(parts, "send to "+quoteAll(s.Send))
	}
	if len(s.Recv) > 0 {
		parts = append(parts, "take from "+quoteAll(s.Recv))
	}
	out := strings.Join(parts, "; ")
	if !s.Expires.IsZero() {
		out += "; until " + s.Expires.UTC().Format(time.RFC3339)
	}
	return out
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
