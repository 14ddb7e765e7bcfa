package tests

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rogpeppe/go-internal/testscript"
)

// cmdNatsAccount starts a NATS server of the user's own ("bring your
// own"), in the test process, whose one account has JetStream limits as
// an operator writes them in its configuration:
//
//	natsaccount MAX_STREAMS MAX_FILE
//
// MAX_FILE is a size in the server's syntax (20MB). SKYPIPE_URL is set to
// the account's user, with a password made for the script.
func cmdNatsAccount(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: natsaccount MAX_STREAMS MAX_FILE")
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	password := hex.EncodeToString(b[:])
	conf := ts.MkAbs(".nats/server.conf")
	ts.Check(os.MkdirAll(ts.MkAbs(".nats/store"), 0o700))
	ts.Check(os.WriteFile(conf, []byte(fmt.Sprintf(`listen: "127.0.0.1:-1"
jetstream { store_dir: %q }
accounts {
  APP {
    jetstream { max_streams: %s, max_file: %s, max_mem: 0 }
    users [ { user: app, password: %q } ]
  }
}
`, ts.MkAbs(".nats/store"), args[0], args[1], password)), 0o600))
	opts, err := server.ProcessConfigFile(conf)
	ts.Check(err)
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	ts.Check(err)
	go srv.Start()
	ts.Defer(srv.Shutdown)
	if !srv.ReadyForConnections(waitLimit) {
		ts.Fatalf("the NATS server did not start within %v", waitLimit)
	}
	ts.Setenv("SKYPIPE_URL", fmt.Sprintf("nats://app:%s@%s", password, srv.Addr()))
}
