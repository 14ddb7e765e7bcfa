package web

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNarrowTokens(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tok, err := Mint("sat-token", Scope{Send: []string{"logs", "ci-*"}, Recv: []string{"jobs"}, Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !IsNarrow(tok) || strings.Contains(tok, "sat-token") {
		t.Fatalf("token %q", tok)
	}
	s, err := ParseNarrow("sat-token", tok, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		d    Direction
		name string
		ok   bool
	}{
		{Sending, "logs", true},
		{Sending, "ci-build-42", true},
		{Sending, "ci-", true},
		{Sending, "ci", false},
		{Sending, "logs2", false},
		{Sending, "jobs", false},
		{Taking, "jobs", true},
		{Taking, "logs", false},
		{Taking, "ci-x", false},
		{Sending, "", false},
	} {
		if got := s.Allows(tc.d, tc.name); got != tc.ok {
			t.Errorf("Allows(%v, %q) = %v, want %v", tc.d, tc.name, got, tc.ok)
		}
	}
	if s.ID == "" || !s.Expires.Equal(now.Add(time.Hour)) {
		t.Errorf("scope %+v", s)
	}

	// Refused: another satellite's, expired, tampered with, or no token.
	if _, err := ParseNarrow("other-token", tok, now); !errors.Is(err, ErrBadToken) {
		t.Errorf("another satellite's token: %v", err)
	}
	if _, err := ParseNarrow("sat-token", tok, now.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("an expired token: %v", err)
	}
	wider, _ := Mint("sat-token", Scope{Send: []string{"*"}})
	claimsOf := func(tok string) string { return strings.Split(tok, ".")[1] }
	forged := strings.Replace(tok, claimsOf(tok), claimsOf(wider), 1)
	for _, bad := range []string{forged, tok[:len(tok)-2], "spn1.", "spn1..", "sat-token", "spn1.e30." + strings.Split(tok, ".")[2]} {
		if _, err := ParseNarrow("sat-token", bad, now); !errors.Is(err, ErrBadToken) {
			t.Errorf("ParseNarrow(%q) = %v, want ErrBadToken", bad, err)
		}
	}

	// Minting wants the satellite's token and at least one valid pipe.
	for _, tc := range []struct {
		sat   string
		scope Scope
	}{
		{"", Scope{Send: []string{"x"}}},
		{tok, Scope{Send: []string{"x"}}},
		{"sat-token", Scope{}},
		{"sat-token", Scope{Send: []string{"bad\x00name"}}},
	} {
		if _, err := Mint(tc.sat, tc.scope); err == nil {
			t.Errorf("Mint(%q, %+v) succeeded", tc.sat, tc.scope)
		}
	}
}
