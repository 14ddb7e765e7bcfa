package main

import (
	"context"
)

// SetupMigrateCmd moves the items a satellite keeps in the old layout (a
// stream per pipe) into the shared stream that receivers read.
type SetupMigrateCmd struct{}

// Help is the long help of setup migrate.
func (c *SetupMigrateCmd) Help() string {
	return `Before skypipe kept every pipe's items in one stream, it kept each pipe's in
a stream of its own. Receivers read only the one stream, and 'skypipe ls'
says when a satellite still holds items of the old layout.

'skypipe serve' (the local satellite, and those deployed with 'skypipe
setup ssh' or 'setup fly') moves them by itself when it starts on an old
store. On a NATS server of your own, or a cluster of satellites, run this
once every skypipe that uses it is upgraded, while nothing sends to those
pipes: items sent meanwhile would go before the old ones. It moves each
pipe's items in their order and deletes an old stream only once all its
items are stored again; if it fails part way, run it again: nothing is
lost or doubled.`
}

// Run moves the items and says how many, on stderr.
func (c *SetupMigrateCmd) Run(ctx context.Context, g *Globals) error {
	nc, ep, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	res, err := g.pipes(nc, ep).Migrate(ctx)
	if err != nil {
		return err
	}
	if res.Pipes == 0 {
		printf("nothing to move: the satellite keeps no items of the old layout")
		return nil
	}
	printf("moved %d kept item(s) of %d pipe(s) to the shared stream", res.Items, res.Pipes)
	return nil
}
