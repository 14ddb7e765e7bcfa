package main

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/skypipe/skypipe/provision"
)

// tls reads --tls-cert and --tls-key: both or neither. Without them, the
// environment may hold both, base64-encoded (SKYPIPE_TLS_CERT_B64 and
// SKYPIPE_TLS_KEY_B64): how a platform's secrets reach a satellite, such as
// Fly.io's, where a file's mode cannot be set.
func (c *ServeCmd) tls() (*tls.Config, error) {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, &usageError{msg: "--tls-cert and --tls-key go together", hint: "give both files, or neither on loopback"}
	}
	if c.TLSCert == "" {
		return tlsFromEnv()
	}
	certPEM, err := os.ReadFile(c.TLSCert)
	if err != nil {
		return nil, fmt.Errorf("reading the certificate: %w", err)
	}
	keyPEM, err := provision.ReadPrivate(c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("reading the TLS key: %w", err)
	}
	return provision.ServerTLS(certPEM, keyPEM)
}

// refusePlaintext refuses to listen off loopback without both a token and
// TLS: anyone on the network could read or write every pipe.
func refusePlaintext(listen, host string, token, tls bool) error {
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	var missing []string
	if !token {
		missing = append(missing, "a token")
	}
	if !tls {
		missing = append(missing, "TLS")
	}
	if len(missing) == 0 {
		return nil
	}
	return &usageError{
		msg:  fmt.Sprintf("refusing to serve on %s without %s", listen, strings.Join(missing, " and ")),
		hint: "'skypipe setup ssh HOST' deploys a satellite with both; by hand, set --token-file (mode 0600), --tls-cert and --tls-key, or listen on 127.0.0.1",
	}
}

// tlsFromEnv reads the certificate and key from SKYPIPE_TLS_CERT_B64 and
// SKYPIPE_TLS_KEY_B64, if set.
func tlsFromEnv() (*tls.Config, error) {
	certB64, keyB64 := os.Getenv("SKYPIPE_TLS_CERT_B64"), os.Getenv("SKYPIPE_TLS_KEY_B64")
	if certB64 == "" && keyB64 == "" {
		return nil, nil
	}
	certPEM, err1 := base64.StdEncoding.DecodeString(strings.TrimSpace(certB64))
	keyPEM, err2 := base64.StdEncoding.DecodeString(strings.TrimSpace(keyB64))
	if certB64 == "" || keyB64 == "" || err1 != nil || err2 != nil {
		return nil, &usageError{
			msg:  "SKYPIPE_TLS_CERT_B64 and SKYPIPE_TLS_KEY_B64 must both hold base64 PEM",
			hint: "set both, e.g. SKYPIPE_TLS_KEY_B64=$(base64 -w0 < key.pem), or use --tls-cert and --tls-key",
		}
	}
	return provision.ServerTLS(certPEM, keyPEM)
}
