package main

import (
	"fmt"
	"strconv"
	"strings"
)

// byteSize is a size on the command line: a number of bytes with an
// optional unit (KB, MB, GB, TB in powers of 1000; KiB, MiB, GiB, TiB in
// powers of 1024), or "auto".
type byteSize struct {
	n    int64
	auto bool
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// UnmarshalText parses a size for kong.
func (b *byteSize) UnmarshalText(text []byte) error {
	s := strings.ToUpper(strings.TrimSpace(string(text)))
	if s == "AUTO" {
		*b = byteSize{auto: true}
		return nil
	}
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f*float64(mult) > 1<<62 {
		return fmt.Errorf("%q is not a size like 500MB, 20GiB or auto", string(text))
	}
	*b = byteSize{n: int64(f * float64(mult))}
	return nil
}

func (b byteSize) String() string {
	if b.auto {
		return "auto"
	}
	return humanBytes(b.n)
}

// humanBytes prints n in the largest binary unit that keeps it >= 1.
func humanBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
