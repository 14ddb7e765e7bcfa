package web

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Config is what the face needs from its satellite.
type Config struct {
	// Token is the satellite's token: requests present it or a narrow
	// token signed with it. Empty (a satellite on loopback without a
	// token): every request has full access.
	Token string
	// Connect opens a connection to the satellite for one request; the
	// face closes it when the request ends.
	Connect func() (*nats.Conn, error)
	// Websocket is the loopback host:port of the satellite's plain NATS
	// WebSocket listener, where WebSocket upgrades go; "" refuses them.
	Websocket string
	// Log, if set, gets one line per request that moves data or fails:
	// method, pipe, outcome. Never a token, a query or a header.
	Log func(line string)
}

// Face serves the HTTP face. It is an http.Handler.
type Face struct {
	cfg   Config
	ws    *httputil.ReverseProxy
	files http.Handler
	now   func() time.Time
}

//go:embed static
var static embed.FS

// New returns the face of a satellite.
func New(cfg Config) (*Face, error) {
	if cfg.Connect == nil {
		return nil, errors.New("web: no way to connect to the satellite")
	}
	if cfg.Log == nil {
		cfg.Log = func(string) {}
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	f := &Face{cfg: cfg, files: http.FileServerFS(sub), now: time.Now}
	if cfg.Websocket != "" {
		target := &url.URL{Scheme: "http", Host: cfg.Websocket}
		f.ws = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.URL.Path = "/"
				pr.Out.URL.RawPath = ""
			},
			ErrorLog: nil,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				cfg.Log(fmt.Sprintf("websocket: %v", err))
				http.Error(w, "skypipe: error: the satellite's WebSocket listener did not answer", http.StatusBadGateway)
			},
		}
	}
	return f, nil
}

// access is what a request's token allows.
type access struct {
	full  bool
	scope Scope
}

func (a access) allows(d Direction, name string) bool { return a.full || a.scope.Allows(d, name) }

// who names the token in logs, without showing it.
func (a access) who() string {
	if a.full {
		return "full token"
	}
	return "narrow token " + a.scope.ID
}

// ServeHTTP routes a request.
func (f *Face) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if isWebsocket(r) {
		if f.ws == nil {
			f.fail(w, r, http.StatusNotFound, "this satellite serves no NATS over WebSocket", "")
			return
		}
		f.ws.ServeHTTP(w, r)
		return
	}
	if tokenInURL(r.URL) {
		f.fail(w, r, http.StatusBadRequest, "a token goes in the Authorization header, never in a URL",
			`curl -H "Authorization: Bearer $TOKEN" ...: URLs end up in logs and browser histories`)
		return
	}
	path := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(path, "/p/"):
		name, err := url.PathUnescape(strings.TrimPrefix(path, "/p/"))
		if err != nil {
			f.fail(w, r, http.StatusBadRequest, "the pipe name is not percent-encoded right", "")
			return
		}
		f.pipe(w, r, name)
	case path == "/pipes":
		if r.Method != http.MethodGet {
			f.methods(w, r, "GET")
			return
		}
		if a, ok := f.auth(w, r); ok {
			f.list(w, r, a)
		}
	case path == "/" || path == "/app.js" || path == "/style.css":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			f.methods(w, r, "GET, HEAD")
			return
		}
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' blob: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		f.files.ServeHTTP(w, r)
	default:
		f.fail(w, r, http.StatusNotFound, "no such path", "pipes are at /p/NAME, the list at /pipes, a page to use them at /")
	}
}

// pipe serves /p/NAME.
func (f *Face) pipe(w http.ResponseWriter, r *http.Request, name string) {
	var d Direction
	switch r.Method {
	case http.MethodPut, http.MethodPost:
		d = Sending
	case http.MethodGet, http.MethodDelete:
		d = Taking
	default:
		// HEAD too: a GET takes an item, and HEAD must not.
		f.methods(w, r, "PUT, POST, GET, DELETE")
		return
	}
	a, ok := f.auth(w, r)
	if !ok {
		return
	}
	if !a.allows(d, name) {
		verb := map[Direction]string{Sending: "send to", Taking: "take from"}[d]
		f.fail(w, r, http.StatusForbidden, fmt.Sprintf("this token may not %s pipe %q", verb, name), "it allows: "+a.scope.String())
		f.cfg.Log(fmt.Sprintf("%s %q refused: %s", r.Method, name, a.who()))
		return
	}
	switch r.Method {
	case http.MethodPut, http.MethodPost:
		f.send(w, r, name, a)
	case http.MethodGet:
		f.receive(w, r, name, a)
	case http.MethodDelete:
		f.remove(w, r, name, a)
	}
}

// auth reads the bearer token; on failure it answers 401.
func (f *Face) auth(w http.ResponseWriter, r *http.Request) (access, bool) {
	if f.cfg.Token == "" {
		return access{full: true}, true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="skypipe"`)
		f.fail(w, r, http.StatusUnauthorized, "no token", `send it as a header: -H "Authorization: Bearer $TOKEN"`)
		return access{}, false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(f.cfg.Token)) == 1 {
		return access{full: true}, true
	}
	scope, err := ParseNarrow(f.cfg.Token, tok, f.now())
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="skypipe", error="invalid_token"`)
		f.fail(w, r, http.StatusUnauthorized, "the satellite refused the token: "+err.Error(), "ask whoever runs the satellite for a token ('skypipe setup token')")
		f.cfg.Log(fmt.Sprintf("%s %s refused: %v", r.Method, r.URL.EscapedPath(), err))
		return access{}, false
	}
	return access{scope: scope}, true
}

func (f *Face) methods(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	f.fail(w, r, http.StatusMethodNotAllowed, r.Method+" is not a method of "+r.URL.EscapedPath(), "methods: "+allow)
}

// fail answers an error as skypipe's command line says it: an error line
// and a hint.
func (f *Face) fail(w http.ResponseWriter, _ *http.Request, status int, msg, hint string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "skypipe: error: %s\n", msg)
	if hint != "" {
		fmt.Fprintf(w, "skypipe: hint: %s\n", hint)
	}
}

func isWebsocket(r *http.Request) bool {
	return headerHas(r.Header, "Connection", "upgrade") && headerHas(r.Header, "Upgrade", "websocket")
}

func headerHas(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// tokenInURL tells whether a URL seems to carry a credential.
func tokenInURL(u *url.URL) bool {
	if u.User != nil {
		return true
	}
	for k := range u.Query() {
		switch strings.ToLower(k) {
		case "token", "access_token", "auth", "authorization", "bearer":
			return true
		}
	}
	return false
}

// Server is the face listening on an address.
type Server struct {
	srv  *http.Server
	l    net.Listener
	tls  bool
	done chan struct{}
	err  error
	once sync.Once
}

// Listen serves h on addr (port 0 picks one), with TLS if tlsConfig is set
// (HTTP/2 offered as well).
func Listen(addr string, tlsConfig *tls.Config, h http.Handler) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("the HTTP face on %s: %w", addr, err)
	}
	s := &Server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		},
		l: l, tls: tlsConfig != nil, done: make(chan struct{}),
	}
	go func() {
		var err error
		if tlsConfig != nil {
			s.srv.TLSConfig = tlsConfig.Clone()
			err = s.srv.ServeTLS(l, "", "")
		} else {
			err = s.srv.Serve(l)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
		close(s.done)
	}()
	return s, nil
}

// URL is where the face listens: http:// or https://, host:port.
func (s *Server) URL() string {
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	return scheme + "://" + s.l.Addr().String()
}

// Close stops listening and cuts the requests under way: their items
// break visibly, as when the satellite stops.
func (s *Server) Close() error {
	s.once.Do(func() { _ = s.srv.Close() })
	<-s.done
	return s.err
}

// Shutdown stops listening and waits for requests under way until ctx ends,
// then cuts them.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.Close()
	}
	<-s.done
	return err
}
