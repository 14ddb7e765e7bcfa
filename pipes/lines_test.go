package pipes

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestLineReader: each line comes out whole, '\n' included, however the
// input is cut into reads and however small the reads asked for.
func TestLineReader(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"lines", "a\nbb\nccc\n", []string{"a\n", "bb\n", "ccc\n"}},
		{"last line without newline", "a\nb", []string{"a\n", "b"}},
		{"empty lines", "\n\nx\n", []string{"\n", "\n", "x\n"}},
		{"a line longer than the buffer", strings.Repeat("x", 200<<10) + "\ny\n", []string{strings.Repeat("x", 200<<10) + "\n", "y\n"}},
	}
	for _, tt := range tests {
		for _, cut := range []struct {
			name string
			r    func(io.Reader) io.Reader
			buf  int
		}{
			{"whole", func(r io.Reader) io.Reader { return r }, 1 << 20},
			{"one byte reads", iotest.OneByteReader, 1 << 20},
			{"small buffer", func(r io.Reader) io.Reader { return r }, 3},
		} {
			t.Run(tt.name+"/"+cut.name, func(t *testing.T) {
				br := bufio.NewReaderSize(cut.r(strings.NewReader(tt.input)), 64<<10)
				var got []string
				for {
					if _, err := br.Peek(1); err != nil {
						break
					}
					var line []byte
					lr := &lineReader{br: br}
					buf := make([]byte, cut.buf)
					for {
						n, err := lr.Read(buf)
						line = append(line, buf[:n]...)
						if err == io.EOF {
							break
						}
						if err != nil {
							t.Fatal(err)
						}
					}
					got = append(got, string(line))
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d lines, want %d", len(got), len(tt.want))
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Errorf("line %d: %q, want %q", i, trunc(got[i]), trunc(tt.want[i]))
					}
				}
			})
		}
	}
}

func trunc(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}
