package tests

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/skypipe/skypipe/tests/link"
)

// Emulated network links (package tests/link), in front of a satellite:
//
//	link NAME URLVAR        start link NAME in front of the satellite whose
//	                        URL (nats:// or tls://, with its token) is in
//	                        $URLVAR; set NAME_URL to the same URL through the
//	                        link and point SKYPIPE_URL at it. The link ends
//	                        with the script.
//	link delay NAME RTT     add RTT to every round trip (half each way), e.g. 80ms; 0 lifts it
//	link rate NAME RATE     limit each direction to RATE, e.g. 100mbit; off lifts it
//	link stall NAME DUR [at N]
//	                        freeze all data both ways for DUR, then go on,
//	                        nothing lost; returns at once. With "at N", the
//	                        stall begins once N bytes in all have gone from
//	                        the satellite to the clients through the link:
//	                        in the middle of a transfer, exactly
//	link stalled NAME N     the link has begun N stalls so far (waited for,
//	                        a minute at most)
//	link cut NAME DUR       reset every connection and refuse new ones for
//	                        DUR; returns at once
//	link reset NAME         reset (TCP RST) every connection now
//	link wait NAME          wait until no stall or cut is on

// scriptLinks are the links each running script started, by name.
var scriptLinks = struct {
	sync.Mutex
	m map[*testscript.TestScript]map[string]*link.Proxy
}{m: map[*testscript.TestScript]map[string]*link.Proxy{}}

// linkVerbs are link's subcommands, which no link may be named after.
var linkVerbs = map[string]func(ts *testscript.TestScript, p *link.Proxy, args []string){
	"delay": func(ts *testscript.TestScript, p *link.Proxy, args []string) {
		p.SetRTT(durationArg(ts, args, "link delay NAME RTT"))
	},
	"rate": func(ts *testscript.TestScript, p *link.Proxy, args []string) {
		if len(args) != 1 {
			ts.Fatalf("usage: link rate NAME RATE")
		}
		r, err := link.ParseRate(args[0])
		ts.Check(err)
		p.SetRate(r)
	},
	"stall": func(ts *testscript.TestScript, p *link.Proxy, args []string) {
		const usage = "link stall NAME DURATION [at BYTES]"
		if len(args) == 3 && args[1] == "at" {
			p.StallAt(intArg(ts, args[2]), durationArg(ts, args[:1], usage))
			return
		}
		p.Stall(durationArg(ts, args, usage))
	},
	"stalled": func(ts *testscript.TestScript, p *link.Proxy, args []string) {
		if len(args) != 1 {
			ts.Fatalf("usage: link stalled NAME N")
		}
		want := intArg(ts, args[0])
		waitWithin(ts, time.Minute, fmt.Sprintf("the link to begin %d stall(s)", want), func() (bool, string) {
			got := p.Stats().Stalls
			return got >= want, fmt.Sprintf("%d begun", got)
		})
		if got := p.Stats().Stalls; got != want {
			ts.Fatalf("the link has begun %d stall(s), not %d", got, want)
		}
	},
	"cut": func(ts *testscript.TestScript, p *link.Proxy, args []string) {
		p.Cut(durationArg(ts, args, "link cut NAME DURATION"))
	},
	"reset": func(ts *testscript.TestScript, p *link.Proxy, args []string) {
		if len(args) != 0 {
			ts.Fatalf("usage: link reset NAME")
		}
		p.Reset()
	},
	"wait": func(ts *testscript.TestScript, p *link.Proxy, args []string) {
		if len(args) != 0 {
			ts.Fatalf("usage: link wait NAME")
		}
		// A long cut in a script is the point of the script: the bound is
		// generous, but there is one.
		waitWithin(ts, 5*time.Minute, "the link to carry data again", func() (bool, string) {
			return !p.Stalled() && !p.Cutting(), fmt.Sprintf("stalled %v, cut %v", p.Stalled(), p.Cutting())
		})
	},
}

func durationArg(ts *testscript.TestScript, args []string, usage string) time.Duration {
	if len(args) != 1 {
		ts.Fatalf("usage: %s", usage)
	}
	d, err := time.ParseDuration(args[0])
	if err != nil || d < 0 {
		ts.Fatalf("%q is not a duration like 80ms or 3s", args[0])
	}
	return d
}

func cmdLink(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: link NAME URLVAR | link delay|rate|stall|stalled|cut|reset|wait NAME [ARG...]")
	}
	if verb, ok := linkVerbs[args[0]]; ok {
		scriptLinks.Lock()
		p := scriptLinks.m[ts][args[1]]
		scriptLinks.Unlock()
		if p == nil {
			ts.Fatalf("no link %q in this script", args[1])
		}
		verb(ts, p, args[2:])
		return
	}
	if len(args) != 2 {
		ts.Fatalf("usage: link NAME URLVAR")
	}
	name, urlVar := args[0], args[1]
	raw := ts.Getenv(urlVar)
	if raw == "" {
		ts.Fatalf("$%s holds no URL", urlVar)
	}
	u, err := url.Parse(raw)
	ts.Check(err)
	if u.Scheme != "nats" && u.Scheme != "tls" || u.Port() == "" || strings.Contains(raw, ",") {
		ts.Fatalf("$%s: want one nats:// or tls:// URL with a port", urlVar)
	}
	p, err := link.Start(u.Host, link.Options{})
	ts.Check(err)
	scriptLinks.Lock()
	links := scriptLinks.m[ts]
	if links == nil {
		links = map[string]*link.Proxy{}
		scriptLinks.m[ts] = links
	}
	if links[name] != nil {
		scriptLinks.Unlock()
		_ = p.Close()
		ts.Fatalf("link %q already runs", name)
	}
	links[name] = p
	scriptLinks.Unlock()
	ts.Defer(func() {
		_ = p.Close()
		scriptLinks.Lock()
		delete(scriptLinks.m[ts], name)
		if len(scriptLinks.m[ts]) == 0 {
			delete(scriptLinks.m, ts)
		}
		scriptLinks.Unlock()
	})
	// A TLS satellite's certificate names the loopback address the link
	// also listens on, so the URL changes in its port only.
	u.Host = p.Addr()
	ts.Setenv(name+"_URL", u.String())
	ts.Setenv("SKYPIPE_URL", u.String())
}
