package provision

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Satellite is a remote satellite this machine uses instead of the local
// one, cached in $XDG_CONFIG_HOME/skypipe/satellite.json (0600).
type Satellite struct {
	Kind  string `json:"kind"` // "ssh", "join" or "fly"
	URL   string `json:"url"`  // nats://host:port or wss://host:port, without credentials
	Token string `json:"token"`
	// Alt is the satellite's other transport, tried when URL is
	// unreachable (Endpoint.Alt); Web its HTTP face (https://); WSPublicCA
	// says its wss:// URLs present a public certificate (Fly.io's proxy).
	Alt        string `json:"alt_url,omitempty"`
	Web        string `json:"web_url,omitempty"`
	WSPublicCA bool   `json:"ws_public_ca,omitempty"`
	// CAPEM is the pinned CA certificate; CAKeyPEM its key, kept only on
	// the machine that deployed the satellite, to issue its next
	// certificate with the same CA.
	CAPEM    string `json:"ca_pem"`
	CAKeyPEM string `json:"ca_key_pem,omitempty"`
	// SSH is what 'skypipe setup --reset' needs to tear an ssh deployment
	// down.
	SSH *SSHDeployment `json:"ssh,omitempty"`
	// Fly is what 'skypipe setup --reset' needs to tear a Fly.io
	// deployment down.
	Fly *FlyDeployment `json:"fly,omitempty"`
}

// FlyDeployment names a satellite skypipe deployed to Fly.io.
type FlyDeployment struct {
	App string `json:"app"`
	Org string `json:"org"`
}

// Endpoint is how a client reaches the satellite.
func (s Satellite) Endpoint() Endpoint {
	return Endpoint{URL: s.URL, Alt: s.Alt, Web: s.Web, WSPublicCA: s.WSPublicCA, Token: s.Token, CAPEM: []byte(s.CAPEM), Source: s.Kind}
}

// Authority is the CA the satellite's certificate comes from, if this
// machine holds its key.
func (s Satellite) Authority() (Authority, bool) {
	if s.CAPEM == "" || s.CAKeyPEM == "" {
		return Authority{}, false
	}
	return Authority{CertPEM: []byte(s.CAPEM), KeyPEM: []byte(s.CAKeyPEM)}, true
}

// ErrNoSatellite: no remote satellite is cached.
var ErrNoSatellite = errors.New("no remote satellite is set up")

// ErrJoinString: a join string that is not one.
var ErrJoinString = errors.New("not a skypipe join string")

func (p Paths) satelliteFile() string { return filepath.Join(p.Config, "satellite.json") }

// SatelliteFile is where the remote satellite is cached.
func (p Paths) SatelliteFile() string { return p.satelliteFile() }

// LoadSatellite reads the cached remote satellite: ErrNoSatellite if there
// is none.
func LoadSatellite(p Paths) (Satellite, error) {
	b, err := ReadPrivate(p.satelliteFile())
	if errors.Is(err, os.ErrNotExist) {
		return Satellite{}, ErrNoSatellite
	}
	if err != nil {
		return Satellite{}, err
	}
	var s Satellite
	if err := json.Unmarshal(b, &s); err != nil {
		return Satellite{}, fmt.Errorf("%s: %w", p.satelliteFile(), err)
	}
	if s.URL == "" {
		return Satellite{}, fmt.Errorf("%s holds no URL", p.satelliteFile())
	}
	return s, nil
}

// SaveSatellite caches s (0600, in a 0700 directory).
func SaveSatellite(p Paths, s Satellite) error {
	if err := p.mkdirs(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writePrivate(p.satelliteFile(), append(b, '\n'))
}

// ForgetSatellite removes the cache; without it, skypipe uses the local
// satellite again.
func ForgetSatellite(p Paths) error {
	err := os.Remove(p.satelliteFile())
	if errors.Is(err, os.ErrNotExist) {
		return ErrNoSatellite
	}
	return err
}

// joinPrefix versions the join string's format.
const joinPrefix = "skypipe1:"

type joinFields struct {
	URL        string `json:"u"`
	Token      string `json:"t"`
	CA         string `json:"ca"`
	Alt        string `json:"a,omitempty"`
	Web        string `json:"w,omitempty"`
	WSPublicCA bool   `json:"wp,omitempty"`
}

// JoinString is one line that carries everything another machine needs to
// use the satellite: its transports (URL, Alt, Web), token and pinned CA. It
// holds the token: a secret.
func (s Satellite) JoinString() string {
	b, _ := json.Marshal(joinFields{URL: s.URL, Token: s.Token, CA: s.CAPEM, Alt: s.Alt, Web: s.Web, WSPublicCA: s.WSPublicCA})
	return joinPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseJoin reads a join string into a satellite of kind "join".
func ParseJoin(str string) (Satellite, error) {
	str = strings.TrimSpace(str)
	rest, ok := strings.CutPrefix(str, joinPrefix)
	if !ok {
		return Satellite{}, fmt.Errorf("%w: it starts with %q", ErrJoinString, joinPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(rest, "="))
	if err != nil {
		return Satellite{}, fmt.Errorf("%w: %v (was it cut when copied?)", ErrJoinString, err)
	}
	var f joinFields
	if err := json.Unmarshal(b, &f); err != nil {
		return Satellite{}, fmt.Errorf("%w: %v", ErrJoinString, err)
	}
	if _, err := FromURL(f.URL); err != nil || f.Token == "" || f.CA == "" {
		return Satellite{}, fmt.Errorf("%w: it lacks the URL, token or CA", ErrJoinString)
	}
	if _, err := clientTLS([]byte(f.CA)); err != nil {
		return Satellite{}, fmt.Errorf("%w: %v", ErrJoinString, err)
	}
	if f.Alt != "" {
		if _, err := FromURL(f.Alt); err != nil {
			return Satellite{}, fmt.Errorf("%w: its second URL: %v", ErrJoinString, err)
		}
	}
	if u, err := url.Parse(f.Web); f.Web != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
		return Satellite{}, fmt.Errorf("%w: its HTTP face %q is not an https:// URL", ErrJoinString, f.Web)
	}
	return Satellite{Kind: "join", URL: f.URL, Alt: f.Alt, Web: f.Web, WSPublicCA: f.WSPublicCA, Token: f.Token, CAPEM: f.CA}, nil
}
