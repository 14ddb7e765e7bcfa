package provision

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"
)

// Endpoint is a satellite a client can reach.
type Endpoint struct {
	URL    string // nats://host:port, never with credentials
	Token  string
	Source string // where it came from: "local", "--url", "ssh", "join", "fly", "context NAME"
	PID    int    // the local satellite's process, if known

	// CAPEM, if set, is the only CA the client trusts for the satellite's
	// certificate (pinned), and the connection must be TLS.
	CAPEM []byte
	// User and Pass authenticate as a user, where the server has users.
	User, Pass string
	// Creds is a NATS credentials file (JWT and NKey seed).
	Creds string
	// NKeySeed is a file holding an NKey user seed.
	NKeySeed string
	// CertFile and KeyFile are a client certificate, for servers that
	// verify clients.
	CertFile, KeyFile string
	// JSDomain is the JetStream domain to use ("" for the server's own
	// JetStream), as a leaf node of a hub with JetStream in a domain needs.
	JSDomain string
}

// Pinned tells whether the endpoint trusts one CA of its own.
func (ep Endpoint) Pinned() bool { return len(ep.CAPEM) > 0 }

// dialTimeout bounds a connection attempt.
const dialTimeout = 3 * time.Second

// Dial connects to an endpoint. A client that loses its connection fails
// rather than reconnecting: a pipe must not go on after a gap.
func Dial(ep Endpoint) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("skypipe"),
		nats.Timeout(dialTimeout),
		nats.NoReconnect(),
		nats.PingInterval(20 * time.Second),
		nats.MaxPingsOutstanding(3),
	}
	if ep.Token != "" {
		opts = append(opts, nats.Token(ep.Token))
	}
	if ep.User != "" {
		opts = append(opts, nats.UserInfo(ep.User, ep.Pass))
	}
	if ep.Creds != "" {
		opts = append(opts, nats.UserCredentials(ep.Creds))
	}
	if ep.NKeySeed != "" {
		opt, err := nats.NkeyOptionFromSeed(ep.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("the nkey seed %s: %w", ep.NKeySeed, err)
		}
		opts = append(opts, opt)
	}
	if ep.Pinned() || ep.CertFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if ep.Pinned() {
			var err error
			if cfg, err = clientTLS(ep.CAPEM); err != nil {
				return nil, err
			}
		}
		if ep.CertFile != "" {
			pair, err := tls.LoadX509KeyPair(ep.CertFile, ep.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("the client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, nats.Secure(cfg))
	}
	nc, err := nats.Connect(ep.URL, opts...)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) {
			return nil, fmt.Errorf("%w at %s", ErrAuth, Redact(ep.URL))
		}
		if isCertError(err) {
			return nil, fmt.Errorf("%w at %s: %v", ErrCertificate, Redact(ep.URL), certReason(err))
		}
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, Redact(ep.URL), err)
	}
	return nc, nil
}

// FromURL is the endpoint a user names with --url or SKYPIPE_URL. A token
// may ride in the URL's user part (nats://TOKEN@host:port).
func FromURL(raw string) (Endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Endpoint{}, fmt.Errorf("%q is not a URL like nats://host:4222", Redact(raw))
	}
	switch u.Scheme {
	case "nats", "tls":
	default:
		return Endpoint{}, fmt.Errorf("%q: the scheme must be nats:// or tls://", Redact(raw))
	}
	ep := Endpoint{Source: "--url"}
	if _, hasPassword := u.User.Password(); u.User != nil && !hasPassword {
		// A lone user part is a token; user:password stays for nats.go.
		ep.Token = u.User.Username()
		u.User = nil
	}
	ep.URL = u.String()
	return ep, nil
}

// Redact removes credentials from a URL for display.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User("REDACTED")
	return u.String()
}
