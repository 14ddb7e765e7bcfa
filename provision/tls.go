package provision

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Authority is skypipe's own certificate authority for one remote
// satellite: clients trust it, and only it, for that satellite.
type Authority struct {
	CertPEM []byte // the CA certificate, which clients pin
	KeyPEM  []byte // its private key, kept by whoever deploys (0600)
}

// Validity of what NewAuthority and deployments issue.
const (
	AuthorityValidity  = 10 * 365 * 24 * time.Hour
	ServerCertValidity = 5 * 365 * 24 * time.Hour
)

// clockSkew backdates certificates so that a client whose clock is a little
// behind the deployer's accepts them.
const clockSkew = time.Hour

// NewAuthority makes a self-signed ECDSA P-256 CA.
func NewAuthority() (Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Authority{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"skypipe"}, CommonName: "skypipe satellite CA"},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(AuthorityValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return Authority{}, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return Authority{}, err
	}
	return Authority{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: keyPEM}, nil
}

// Issue signs a server certificate for hosts (names or IP addresses), valid
// from an hour ago for validFor. A validFor under zero gives a certificate
// that has already expired, as one left running for years would be.
func (a Authority) Issue(hosts []string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("a server certificate needs at least one host")
	}
	if validFor <= -clockSkew {
		return nil, nil, fmt.Errorf("validity %v ends before it starts", validFor)
	}
	pair, err := tls.X509KeyPair(a.CertPEM, a.KeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("the certificate authority: %w", err)
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"skypipe"}, CommonName: hosts[0]},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, pair.PrivateKey)
	if err != nil {
		return nil, nil, err
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// ServerTLS is the TLS configuration of a satellite serving certPEM/keyPEM.
func ServerTLS(certPEM, keyPEM []byte) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// clientTLS trusts caPEM and nothing else: not the system's roots.
func clientTLS(caPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%w: the pinned CA is not a PEM certificate", ErrCertificate)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// isCertError tells whether err comes from verifying the server's
// certificate.
func isCertError(err error) bool {
	var (
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		unknown  x509.UnknownAuthorityError
		verify   *tls.CertificateVerificationError
	)
	return errors.As(err, &invalid) || errors.As(err, &hostname) || errors.As(err, &unknown) || errors.As(err, &verify)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// certReason says in a few words why a certificate was refused.
func certReason(err error) string {
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
		return "its certificate has expired or is not valid yet (" + invalid.Detail + ")"
	}
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		return "its certificate is not signed by a CA this client trusts (the pinned one, if any)"
	}
	var hostname x509.HostnameError
	if errors.As(err, &hostname) {
		return "its certificate is for another host (" + hostname.Error() + ")"
	}
	return err.Error()
}
