package provision

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// TestDialWithCreds runs a real NATS server in operator (JWT) mode, as an
// existing deployment would be, and dials it with a credentials file.
func TestDialWithCreds(t *testing.T) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	operator, err := nkeys.CreateOperator()
	must(err)
	opub, err := operator.PublicKey()
	must(err)
	ojwt, err := jwt.NewOperatorClaims(opub).Encode(operator)
	must(err)
	oclaims, err := jwt.DecodeOperatorClaims(ojwt)
	must(err)

	credsFile := filepath.Join(t.TempDir(), "user.creds")
	// account makes an account signed by the operator; an application
	// account gets JetStream and a user whose credentials go to credsFile.
	account := func(js bool) (string, string) {
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		claims := jwt.NewAccountClaims(pub)
		if js {
			claims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		token, err := claims.Encode(operator)
		must(err)
		if js {
			// The user is signed by this account.
			user, err := nkeys.CreateUser()
			must(err)
			upub, err := user.PublicKey()
			must(err)
			ujwt, err := jwt.NewUserClaims(upub).Encode(kp)
			must(err)
			seed, err := user.Seed()
			must(err)
			creds, err := jwt.FormatUserConfig(ujwt, seed)
			must(err)
			must(os.WriteFile(credsFile, creds, 0o600))
		}
		return pub, token
	}
	sysPub, sysJWT := account(false)
	appPub, appJWT := account(true)

	resolver := &server.MemAccResolver{}
	must(resolver.Store(sysPub, sysJWT))
	must(resolver.Store(appPub, appJWT))
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: t.TempDir(),
		TrustedOperators: []*jwt.OperatorClaims{oclaims},
		SystemAccount:    sysPub,
		AccountResolver:  resolver,
	})
	must(err)
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}

	nc, err := Dial(Endpoint{URL: ns.ClientURL(), Creds: credsFile})
	must(err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	must(err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("JetStream through the creds' account: %v", err)
	}
	if _, err := Dial(Endpoint{URL: ns.ClientURL()}); !errors.Is(err, ErrAuth) {
		t.Fatalf("without creds: err = %v, want ErrAuth", err)
	}
}
