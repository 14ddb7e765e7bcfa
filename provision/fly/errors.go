package fly

import (
	"errors"
	"fmt"
)

// Errors callers tell apart.
var (
	// ErrNoToken: no Fly.io API token was given.
	ErrNoToken = errors.New("no Fly.io API token")
	// ErrBadToken: Fly.io refused the API token (HTTP 401).
	ErrBadToken = errors.New("Fly.io refused the API token")
	// ErrForbidden: the token may not do this (HTTP 403).
	ErrForbidden = errors.New("the Fly.io API token may not do this")
	// ErrNotFound: Fly.io has no such app, machine or volume (HTTP 404).
	ErrNotFound = errors.New("not found on Fly.io")
	// ErrNameTaken: the app name belongs to someone else or to an app that
	// is not a skypipe satellite.
	ErrNameTaken = errors.New("app name taken")
	// ErrUnavailable: Fly.io failed on its side (HTTP 5xx) or could not be
	// reached.
	ErrUnavailable = errors.New("Fly.io is unavailable")
	// ErrNoSatellite: the organization has no skypipe satellite.
	ErrNoSatellite = errors.New("no skypipe satellite on Fly.io")
	// ErrAmbiguous: the organization has more than one skypipe satellite.
	ErrAmbiguous = errors.New("more than one skypipe satellite on Fly.io")
	// ErrWrongBinary: the binary to deploy is not a static linux/amd64
	// executable.
	ErrWrongBinary = errors.New("not a static linux/amd64 skypipe binary")
	// ErrNoJoin: the satellite exists but did not give up its token.
	ErrNoJoin = errors.New("could not read the satellite's token")
)

// APIError is a refusal from Fly.io: the request, the HTTP status and
// Fly's own message. It unwraps to the sentinel its status stands for.
type APIError struct {
	Method, Path string // never with credentials
	Status       int
	Message      string // Fly's "error" field, or the start of the body
	kind         error
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s %s: %d", e.Method, e.Path, e.Status)
	if e.Message != "" {
		msg += " " + e.Message
	}
	if e.kind != nil {
		msg = e.kind.Error() + ": " + msg
	}
	return msg
}

func (e *APIError) Unwrap() error { return e.kind }

// kindOf maps an HTTP status to a sentinel. 409 and 422 stand for a name
// that is taken only where a name is created; elsewhere they stay plain.
func kindOf(status int) error {
	switch {
	case status == 401:
		return ErrBadToken
	case status == 403:
		return ErrForbidden
	case status == 404:
		return ErrNotFound
	case status >= 500:
		return ErrUnavailable
	}
	return nil
}
