package main

import "testing"

func TestHTTPAddr(t *testing.T) {
	for _, tc := range []struct {
		http, listen string
		proxied      bool
		token, tls   bool
		want         string
		ok           bool
	}{
		{"auto", "127.0.0.1:4222", false, true, true, "", true},           // loopback: off
		{"auto", "0.0.0.0:4222", false, true, true, "0.0.0.0:8443", true}, // remote with TLS: on
		{"auto", "0.0.0.0:0", false, true, true, "0.0.0.0:0", true},       // a random port beside a random port
		{"auto", "0.0.0.0:4222", false, true, false, "", true},            // no TLS: off
		{"off", "0.0.0.0:4222", false, true, true, "", true},              // asked off
		{"127.0.0.1:8080", "127.0.0.1:4222", false, false, false, "127.0.0.1:8080", true},
		{"0.0.0.0:8080", "0.0.0.0:4222", false, false, true, "", false},           // no token off loopback
		{"0.0.0.0:8080", "0.0.0.0:4222", false, true, false, "", false},           // plain HTTP off loopback
		{"0.0.0.0:8080", "0.0.0.0:4222", true, true, false, "0.0.0.0:8080", true}, // TLS ends at a proxy
		{"8080", "0.0.0.0:4222", false, true, true, "", false},                    // not HOST:PORT
	} {
		c := ServeCmd{HTTP: tc.http, HTTPProxied: tc.proxied}
		got, err := c.httpAddr(tc.listen, tc.token, tc.tls)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("--http %s --listen %s (proxied %v, token %v, tls %v) = %q, %v; want %q, ok %v",
				tc.http, tc.listen, tc.proxied, tc.token, tc.tls, got, err, tc.want, tc.ok)
		}
	}
}

func TestSetupSSHHTTPSPort(t *testing.T) {
	for _, tc := range []struct {
		port, https int
		websocket   bool
		want        int
		ok          bool
	}{
		{4222, -1, false, 8443, true}, // the default
		{4222, -1, true, 443, true},   // --websocket
		{443, -1, false, 443, true},   // --port 443: that port only
		{4222, 0, false, 0, true},     // no HTTP face
		{4222, 9443, false, 9443, true},
		{4222, 4222, false, 4222, true}, // one port
		{4222, 9443, true, 0, false},    // --websocket means 443
		{4222, 70000, false, 0, false},
	} {
		c := SetupSSHCmd{Port: tc.port, HTTPSPort: tc.https, Websocket: tc.websocket}
		got, err := c.httpsPort()
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("--port %d --https-port %d --websocket=%v: %d, %v; want %d, ok %v", tc.port, tc.https, tc.websocket, got, err, tc.want, tc.ok)
		}
	}
}
