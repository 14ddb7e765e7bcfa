package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/skypipe/skypipe/embedded/web"
)

// SetupTokenCmd mints a narrow token for the satellite's HTTP face.
type SetupTokenCmd struct {
	Send    []string      `help:"A pipe the token may send to: a name, or a prefix and '*' (ci-*). Repeat or separate with commas." placeholder:"NAME"`
	Recv    []string      `help:"A pipe the token may take items from (follow, drop its kept items too). Repeat or separate with commas." placeholder:"NAME"`
	Expires time.Duration `help:"The token stops working after this long (e.g. 720h); default: never." placeholder:"DUR"`
	Header  bool          `help:"Print the whole header line, 'Authorization: Bearer TOKEN', for a private file that curl reads with -H @FILE (no token on its command line)."`
}

// Help is the long help of setup token.
func (c *SetupTokenCmd) Help() string {
	return `Prints, on stdout, a token limited to some pipes and to sending or taking,
for a machine without skypipe: a CI job that sends its logs, a device that
takes its jobs. It works with the satellite's HTTP face (curl, the browser
page) only; skypipe and NATS clients need the satellite's own token.

The token is signed with a key derived from the satellite's token: the
satellite keeps no list of tokens, and checks each one's signature, pipes,
direction and expiry on every request. Rotating the satellite's token
('skypipe setup ssh HOST --rotate') revokes every narrow token.

Examples:
  skypipe setup token --send logs                 send to "logs", nothing else
  skypipe setup token --recv 'jobs-*' --expires 720h
  (umask 077; skypipe setup token --send logs --header > logs.auth)
  curl -fsS -H @logs.auth -T build.log https://HOST:8443/p/logs`
}

// Run mints the token.
func (c *SetupTokenCmd) Run(ctx context.Context, g *Globals, s *SetupCmd) error {
	if err := s.noReset(); err != nil {
		return err
	}
	scope := web.Scope{Send: splitNames(c.Send), Recv: splitNames(c.Recv)}
	if len(scope.Send) == 0 && len(scope.Recv) == 0 {
		return &usageError{msg: "a narrow token needs --send or --recv", hint: "skypipe setup token --send logs"}
	}
	for _, p := range append(append([]string{}, scope.Send...), scope.Recv...) {
		if err := web.CheckPattern(p); err != nil {
			return fmt.Errorf("pipe %q: %w", p, err)
		}
	}
	if c.Expires < 0 {
		return &usageError{msg: "--expires must not be negative"}
	}
	if c.Expires > 0 {
		scope.Expires = time.Now().Add(c.Expires).Truncate(time.Second)
	}
	ep, remote, err := g.remote()
	if err != nil {
		return err
	}
	if !remote {
		return &usageError{
			msg:  "the local satellite serves no HTTP face, so a narrow token has no use there",
			hint: "deploy a satellite with 'skypipe setup ssh HOST' or 'skypipe setup fly', or set SKYPIPE_URL to one that serves HTTP (skypipe serve --http)",
		}
	}
	if ep.Token == "" || web.IsNarrow(ep.Token) {
		return &usageError{msg: "minting a narrow token takes the satellite's own token", hint: "run this where the satellite was set up or joined"}
	}
	tok, err := web.Mint(ep.Token, scope)
	if err != nil {
		return err
	}
	if c.Header {
		fmt.Println("Authorization: Bearer " + tok)
	} else {
		fmt.Println(tok)
	}
	printf("a token that may %s, through the HTTP face only; it is a secret: pass it on privately", scope)
	base := ep.Web
	if base == "" {
		base = "https://HOST:8443"
		first, _, _ := strings.Cut(ep.URL, ",") // a cluster's first member
		if u, err := url.Parse(strings.TrimSpace(first)); err == nil && u.Hostname() != "" {
			base = "https://" + u.Hostname() + ":8443"
		}
	}
	cacert := ""
	if ep.Pinned() && !ep.WSPublicCA {
		cacert = "--cacert skypipe-ca.pem "
		printf("the satellite's certificate comes from its own CA: 'skypipe setup ca > skypipe-ca.pem' writes it")
	}
	auth := "-H @FILE.auth"
	printf("curl reads the header from a private file: (umask 077; skypipe setup token ... --header > FILE.auth)")
	for _, p := range scope.Send {
		printf("send: curl -fsS %s%s -T FILE %s/p/%s", cacert, auth, base, pathName(p))
	}
	for _, p := range scope.Recv {
		printf("take: curl -fsS %s%s %s/p/%s > FILE", cacert, auth, base, pathName(p))
	}
	return nil
}

// splitNames reads repeated and comma-separated flag values.
func splitNames(vals []string) []string {
	var out []string
	for _, v := range vals {
		out = append(out, strings.Split(v, ",")...)
	}
	return out
}

// pathName is a pipe name in a URL path; a pattern shows as NAME.
func pathName(p string) string {
	if strings.HasSuffix(p, "*") {
		return url.PathEscape(strings.TrimSuffix(p, "*")) + "NAME"
	}
	return url.PathEscape(p)
}

// SetupCACmd prints the CA certificate the satellite's clients pin.
type SetupCACmd struct{}

// Help is the long help of setup ca.
func (c *SetupCACmd) Help() string {
	return `Prints, on stdout, the CA certificate (PEM) of the satellite set up here,
which its TLS certificate comes from: for curl (--cacert) and other clients
of its HTTP face. It is public: no secret.

Examples:
  skypipe setup ca > skypipe-ca.pem
  curl --cacert skypipe-ca.pem -H "Authorization: Bearer $TOKEN" https://HOST:8443/pipes`
}

// Run prints the CA.
func (c *SetupCACmd) Run(s *SetupCmd) error {
	sat, err := s.remote("the local one uses no certificate")
	if err != nil {
		return err
	}
	_, err = os.Stdout.WriteString(sat.CAPEM)
	return err
}
