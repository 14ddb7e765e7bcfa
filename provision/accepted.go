package provision

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
)

// The satellites that took a client's credentials: a connection to one
// of them does not wait for it to say so again (Endpoint.Accepted). The
// file holds one SHA-256 of an endpoint's address and credentials per
// line, newest last, mode 0600 in the 0700 config directory: no secret,
// and nothing another user can read or plant.

// acceptedMax is how many endpoints the file remembers.
const acceptedMax = 64

func (p Paths) acceptedFile() string { return filepath.Join(p.Config, "accepted") }

// acceptedKey is what identifies an endpoint's credentials: its URLs and
// every credential, the files' contents included (a creds file renewed
// is another credential).
func acceptedKey(ep Endpoint) string {
	h := sha256.New()
	for _, s := range []string{ep.URL, ep.Alt, ep.Token, ep.User, ep.Pass, string(ep.CAPEM)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	for _, f := range []string{ep.Creds, ep.NKeySeed, ep.CertFile, ep.KeyFile} {
		if f != "" {
			b, _ := os.ReadFile(f)
			h.Write(b)
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (p Paths) acceptedKeys() []string {
	b, err := os.ReadFile(p.acceptedFile())
	if err != nil {
		return nil
	}
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k := sc.Text(); len(k) == sha256.Size*2 {
			keys = append(keys, k)
		}
	}
	return keys
}

// Accepted tells whether the satellite of ep took ep's credentials before.
func (p Paths) Accepted(ep Endpoint) bool {
	key := acceptedKey(ep)
	for _, k := range p.acceptedKeys() {
		if k == key {
			return true
		}
	}
	return false
}

// RememberAccepted notes that the satellite of ep took ep's credentials.
func (p Paths) RememberAccepted(ep Endpoint) error {
	return p.rewriteAccepted(ep, true)
}

// ForgetAccepted drops ep from the satellites that took its credentials:
// the next connection waits for the satellite's answer again.
func (p Paths) ForgetAccepted(ep Endpoint) error {
	return p.rewriteAccepted(ep, false)
}

func (p Paths) rewriteAccepted(ep Endpoint, add bool) error {
	key := acceptedKey(ep)
	var keep []string
	for _, k := range p.acceptedKeys() {
		if k != key {
			keep = append(keep, k)
		}
	}
	if add {
		keep = append(keep, key)
	}
	if len(keep) > acceptedMax {
		keep = keep[len(keep)-acceptedMax:]
	}
	if err := os.MkdirAll(p.Config, 0o700); err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, k := range keep {
		buf.WriteString(k + "\n")
	}
	tmp, err := os.CreateTemp(p.Config, ".accepted-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p.acceptedFile())
}
