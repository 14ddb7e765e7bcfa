package provision

import "errors"

// Errors callers tell apart.
var (
	// ErrUnreachable: no satellite answers at the endpoint.
	ErrUnreachable = errors.New("satellite unreachable")
	// ErrAuth: the satellite refused the credentials.
	ErrAuth = errors.New("satellite refused the credentials")
	// ErrInsecureFile: a file holding a secret is readable by others.
	ErrInsecureFile = errors.New("secret file not private")
	// ErrCertificate: the satellite's certificate is not the pinned one,
	// names another host, or has expired.
	ErrCertificate = errors.New("satellite certificate not trusted")
	// ErrNarrowToken: the token is a narrow one, which opens the
	// satellite's HTTP face only, not its NATS listeners.
	ErrNarrowToken = errors.New("a narrow token works with the satellite's HTTP face only (curl, the browser page), not with skypipe or NATS clients")
	// ErrNoLocal: no local satellite is running.
	ErrNoLocal = errors.New("no local satellite is running")
)
