package pipes

import (
	"bufio"
	"bytes"
	"context"
	"io"
)

// SendLines reads r to its end and sends each line of it, its '\n'
// included (and a last line without one), as an item of its own, as Send
// would send it: live to the receivers attached then, else kept. It
// returns how many items it sent whole.
func (c *Client) SendLines(ctx context.Context, name string, r io.Reader) (int, error) {
	if _, err := checkName(name); err != nil {
		return 0, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
		if _, err := c.send(ctx, name, &lineReader{br: br}, false); err != nil {
			return n, err
		}
		n++
	}
}

// lineReader reads one line of br, its '\n' included, then says EOF.
type lineReader struct {
	br   *bufio.Reader
	done bool
}

func (l *lineReader) Read(p []byte) (int, error) {
	if l.done || len(p) == 0 {
		return 0, io.EOF
	}
	if l.br.Buffered() == 0 {
		if _, err := l.br.Peek(1); err != nil {
			return 0, err // io.EOF: a last line without '\n' ends here
		}
	}
	buf, _ := l.br.Peek(min(l.br.Buffered(), len(p)))
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf, l.done = buf[:i+1], true
	}
	n := copy(p, buf)
	_, _ = l.br.Discard(n)
	return n, nil
}
