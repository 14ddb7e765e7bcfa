package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestTokenKeepsSafeNamesAndEscapesTheRest(t *testing.T) {
	for _, tc := range []struct{ name, token string }{
		{"", "_"},
		{"files", "files"},
		{"Files-2", "Files-2"},
		{"a.b", "a_2Eb"},
		{"a*", "a_2A"},
		{">", "_3E"},
		{"a b", "a_20b"},
		{"_", "_5F"},
		{"a_2Eb", "a_5F2Eb"},
		{"ä", "_C3_A4"},
	} {
		if got := Token(tc.name); got != tc.token {
			t.Errorf("Token(%q) = %q, want %q", tc.name, got, tc.token)
		}
		back, err := NameFromToken(tc.token)
		if err != nil || back != tc.name {
			t.Errorf("NameFromToken(%q) = %q, %v; want %q", tc.token, back, err, tc.name)
		}
	}
}

func TestTokenNeverHoldsSubjectSyntax(t *testing.T) {
	names := []string{"a.b.c", "*", ">", "a.>", "tab\there", " ", "..", "名前.*", strings.Repeat(".", 255)}
	for _, n := range names {
		tok := Token(n)
		if strings.ContainsAny(tok, ".*> \t\r\n") || tok == "" {
			t.Errorf("Token(%q) = %q holds subject syntax or is empty", n, tok)
		}
	}
}

func TestNameFromTokenRejectsWhatTokenCannotProduce(t *testing.T) {
	for _, tok := range []string{"a_", "a_4", "a_zz", "_2e", "_41"} {
		if _, err := NameFromToken(tok); !errors.Is(err, ErrBadToken) {
			t.Errorf("NameFromToken(%q): err = %v, want ErrBadToken", tok, err)
		}
	}
}

func TestStreamNamesDifferAndAreSafe(t *testing.T) {
	seen := map[string]string{}
	for _, n := range []string{"", "a", "A", "a.b", "a_2Eb", "files", "Files"} {
		s := StreamName(n)
		if prev, dup := seen[s]; dup {
			t.Errorf("StreamName(%q) = StreamName(%q) = %s", n, prev, s)
		}
		seen[s] = n
		if strings.ContainsAny(s, ".*> /\\") || len(s) > 255 {
			t.Errorf("StreamName(%q) = %q is not a safe stream name", n, s)
		}
	}
}

// FuzzToken checks that the mapping is injective and that every subject
// of any name is a literal subject inside that name's own namespace.
func FuzzToken(f *testing.F) {
	for _, s := range []string{"", "a", "a.b", "_", "a_2Eb", "*", ">", "名前", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		tok := Token(name)
		if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("Token(%q) = %q is not a single safe token", name, tok)
		}
		back, err := NameFromToken(tok)
		if err != nil || back != name {
			t.Fatalf("NameFromToken(Token(%q)) = %q, %v", name, back, err)
		}
		s := NewSubjects(name)
		for _, subj := range []string{s.Live("I"), s.Head("I"), s.Kept("I"), s.Item("I"), s.Roll(), s.Join(), s.Rcv("R"), s.Take(), s.Who(), s.TakeReply("I")} {
			if !validLiteralSubject(subj) || !strings.HasPrefix(subj, "skypipe."+tok+".") {
				t.Fatalf("name %q: subject %q is not a literal subject of its own", name, subj)
			}
		}
		if old := s.Old(); !strings.HasPrefix(old.Stream, StreamPrefix) || strings.ContainsAny(old.Stream, ".*> \t/\\") {
			t.Fatalf("name %q: old stream name %q is not valid", name, old.Stream)
		}
		if gotTok, item, ok := PipeOfHead(s.Head("I")); !ok || gotTok != tok || item != "I" {
			t.Fatalf("name %q: PipeOfHead(%q) = %q, %q, %v", name, s.Head("I"), gotTok, item, ok)
		}
		for _, subj := range []string{s.Live("I"), s.Kept("I"), s.Item("I"), s.Old().Head("I")} {
			if _, _, ok := PipeOfHead(subj); ok {
				t.Fatalf("name %q: %q taken for a head", name, subj)
			}
		}
	})
}

// validLiteralSubject checks a subject as the NATS server does for a
// publish: non-empty dot-separated tokens, no wildcards, no whitespace.
func validLiteralSubject(subj string) bool {
	for _, tok := range strings.Split(subj, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n*>") {
			return false
		}
	}
	return true
}
