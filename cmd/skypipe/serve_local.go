package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/provision"
)

// acceptStop lets a client holding the token stop the local satellite
// (serve --local): a request to provision.StopSubject gets its pid, a
// message to provision.StopNowSubject calls shutdown. The returned func
// drops the subscriptions.
func acceptStop(url, token string, shutdown func()) (func(), error) {
	nc, err := nats.Connect(url, nats.Token(token), nats.Name("skypipe satellite control"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("listening for stop requests: %w", err)
	}
	_, err = nc.Subscribe(provision.StopSubject, func(m *nats.Msg) {
		_ = m.Respond([]byte(strconv.Itoa(os.Getpid())))
	})
	if err == nil {
		_, err = nc.Subscribe(provision.StopNowSubject, func(*nats.Msg) { shutdown() })
	}
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("listening for stop requests: %w", err)
	}
	return nc.Close, nil
}
