package tests

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/skypipe/skypipe/tests/jsdomain"
)

// A NATS deployment whose JetStream runs in a domain (package
// tests/jsdomain), as a user's own NATS may be:
//
//	jsdomain   run a hub server with JetStream in domain "hub" and a leaf
//	           node server without JetStream connected to it on loopback,
//	           in the test process; point SKYPIPE_URL at the leaf (with its
//	           token), set SKYPIPE_JS_DOMAIN=hub, LEAF_URL to the leaf and
//	           HUB_URL to the hub.
//	           A client of the leaf reaches JetStream only through the
//	           domain's API prefix ($JS.hub.API.>).

func cmdJSDomain(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: jsdomain")
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	d, err := jsdomain.Start(jsdomain.Config{Dir: ts.MkAbs(".jsdomain"), Token: hex.EncodeToString(b[:])})
	ts.Check(err)
	ts.Defer(d.Shutdown)
	ts.Setenv("SKYPIPE_URL", d.LeafURL())
	ts.Setenv("SKYPIPE_JS_DOMAIN", d.Domain())
	ts.Setenv("LEAF_URL", d.LeafURL())
	ts.Setenv("HUB_URL", d.HubURL())
}
