package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rogpeppe/go-internal/testscript"
)

// cmdNatsAccount starts a NATS server of the user's own ("bring your
// own"), in the test process, whose one account has JetStream limits as
// an operator writes them in its configuration:
//
//	natsaccount MAX_STREAMS MAX_FILE [STREAM...]
//
// MAX_FILE is a size in the server's syntax (20MB). Each STREAM is made
// in the account first, on subject team.STREAM, as other users of a
// shared account have theirs. SKYPIPE_URL is set to the account's user,
// with a password made for the script.
func cmdNatsAccount(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: natsaccount MAX_STREAMS MAX_FILE [STREAM...]")
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	password := hex.EncodeToString(b[:])
	dir, err := os.MkdirTemp(ts.MkAbs("."), ".nats-") // a server of its own at each use
	ts.Check(err)
	conf := filepath.Join(dir, "server.conf")
	ts.Check(os.MkdirAll(filepath.Join(dir, "store"), 0o700))
	ts.Check(os.WriteFile(conf, []byte(fmt.Sprintf(`listen: "127.0.0.1:-1"
jetstream { store_dir: %q }
accounts {
  APP {
    jetstream { max_streams: %s, max_file: %s, max_mem: 0 }
    users [ { user: app, password: %q } ]
  }
}
`, filepath.Join(dir, "store"), args[0], args[1], password)), 0o600))
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
	url := fmt.Sprintf("nats://app:%s@%s", password, srv.Addr())
	ts.Setenv("SKYPIPE_URL", url)
	if len(args) == 2 {
		return
	}
	nc, err := nats.Connect(url, nats.NoReconnect())
	ts.Check(err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	ts.Check(err)
	for _, name := range args[2:] {
		ctx, cancel := context.WithTimeout(context.Background(), askLimit)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"team." + name}})
		cancel()
		ts.Check(err)
	}
}
