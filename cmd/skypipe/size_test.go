package main

import "testing"

func TestByteSizeParses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		auto bool
		bad  bool
	}{
		{in: "1024", want: 1024},
		{in: "500MB", want: 500e6},
		{in: "20GiB", want: 20 << 30},
		{in: "1.5g", want: 3 << 29},
		{in: "64 KiB", want: 64 << 10},
		{in: "auto", auto: true},
		{in: "AUTO", auto: true},
		{in: "0", bad: true},
		{in: "-5MB", bad: true},
		{in: "ten", bad: true},
		{in: "", bad: true},
		{in: "9999999TiB", bad: true},
	} {
		var b byteSize
		err := b.UnmarshalText([]byte(tc.in))
		if tc.bad {
			if err == nil {
				t.Errorf("%q: parsed as %+v, want an error", tc.in, b)
			}
			continue
		}
		if err != nil || b.n != tc.want || b.auto != tc.auto {
			t.Errorf("%q: got %+v, %v; want %d auto=%v", tc.in, b, err, tc.want, tc.auto)
		}
	}
}
