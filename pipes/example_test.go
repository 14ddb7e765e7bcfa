package pipes_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/embedded"
	"github.com/skypipe/skypipe/pipes"
)

// satellite starts a satellite on loopback for an example and connects to
// it; stop shuts both down.
func satellite() (nc *nats.Conn, stop func()) {
	dir, err := os.MkdirTemp("", "pipes-example-")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	nc, err = nats.Connect(srv.URL())
	if err != nil {
		log.Fatal(err)
	}
	return nc, func() { nc.Close(); srv.Shutdown(); os.RemoveAll(dir) }
}

// With nobody attached, a pipe keeps what is sent until a receiver takes it.
func ExampleClient_Send() {
	nc, stop := satellite()
	defer stop()
	ctx := context.Background()
	c := pipes.New(nc)

	res, err := c.Send(ctx, "files", strings.NewReader("a file's bytes\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("kept:", res.Kept, "bytes:", res.Bytes)

	var out bytes.Buffer
	if _, err := c.Receive(ctx, "files", &out, pipes.ReceiveOptions{}); err != nil {
		log.Fatal(err)
	}
	fmt.Print(out.String())
	// Output:
	// kept: true bytes: 15
	// a file's bytes
}

// A receiver waiting on a pipe returns at the end of the item someone
// sends: a trigger between two programs.
func ExampleClient_Receive() {
	nc, stop := satellite()
	defer stop()
	ctx := context.Background()
	c := pipes.New(nc)

	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err := c.Receive(ctx, "deploy-done", os.Stdout, pipes.ReceiveOptions{Timeout: time.Minute})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("items:", res.Items)
	}()
	for range 100 { // each look takes a tenth of a second
		if n, _ := c.Attached(ctx, "deploy-done"); n > 0 {
			break
		}
	}
	if _, err := c.Send(ctx, "deploy-done", strings.NewReader("go\n")); err != nil {
		log.Fatal(err)
	}
	<-done
	// Output:
	// go
	// items: 1
}

// Each line an item of its own: a job queue that receivers take one job
// at a time.
func ExampleClient_SendLines() {
	nc, stop := satellite()
	defer stop()
	ctx := context.Background()
	c := pipes.New(nc)

	n, err := c.SendLines(ctx, "jobs", strings.NewReader("a.jpg\nb.jpg\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("queued:", n)
	for range n {
		var job bytes.Buffer
		if _, err := c.Receive(ctx, "jobs", &job, pipes.ReceiveOptions{}); err != nil {
			log.Fatal(err)
		}
		fmt.Print("took ", job.String())
	}
	// Output:
	// queued: 2
	// took a.jpg
	// took b.jpg
}
