package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/skypipe/skypipe/pipes"
)

// client connects a pipes client for one request.
func (f *Face) client(w http.ResponseWriter, r *http.Request, notice func(string)) (*pipes.Client, func(), bool) {
	nc, err := f.cfg.Connect()
	if err != nil {
		f.cfg.Log(fmt.Sprintf("%s: connecting to the satellite: %v", r.Method, err))
		f.fail(w, r, http.StatusServiceUnavailable, "the satellite does not take connections now", "try again in a moment")
		return nil, nil, false
	}
	opts := []pipes.Option{}
	if notice != nil {
		opts = append(opts, pipes.WithNotice(notice))
	}
	return pipes.New(nc, opts...), nc.Close, true
}

// sent is the answer to a send.
type sent struct {
	Pipe     string `json:"pipe"`
	Item     string `json:"item"`
	Bytes    uint64 `json:"bytes"`
	Kept     bool   `json:"kept"`
	KeptFrom uint64 `json:"kept_from,omitempty"`
}

// send reads the request body to its end as one item. A body cut short
// (the client went away, a length not reached, a chunked body without its
// end) is an item its sender gave up: receivers see it broken.
func (f *Face) send(w http.ResponseWriter, r *http.Request, name string, a access) {
	c, done, ok := f.client(w, r, nil)
	if !ok {
		return
	}
	defer done()
	res, err := c.Send(r.Context(), name, r.Body)
	if err != nil {
		f.cfg.Log(fmt.Sprintf("%s %q (%s): %d bytes, failed: %v", r.Method, name, a.who(), res.Bytes, err))
		status, hint := statusOf(err)
		f.fail(w, r, status, fmt.Sprintf("sending to pipe %q: %v", name, err), hint)
		return
	}
	f.cfg.Log(fmt.Sprintf("%s %q (%s): item %s, %d bytes, kept %v", r.Method, name, a.who(), res.Item, res.Bytes, res.Kept))
	writeJSON(w, http.StatusOK, sent{Pipe: name, Item: res.Item, Bytes: res.Bytes, Kept: res.Kept, KeptFrom: res.KeptFrom})
}

// receive takes one item (or follows) and streams it as the body.
func (f *Face) receive(w http.ResponseWriter, r *http.Request, name string, a access) {
	if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
		f.fail(w, r, http.StatusHTTPVersionNotSupported, "HTTP/1.0 cannot tell a broken item from a whole one",
			"use HTTP/1.1 or later, which curl and browsers do by default")
		return
	}
	q := r.URL.Query()
	var opt pipes.ReceiveOptions
	var err error
	if opt.Follow, err = flag(q.Get("follow")); err != nil {
		f.fail(w, r, http.StatusBadRequest, "?follow="+q.Get("follow")+": "+err.Error(), "follow=1 follows")
		return
	}
	listen, err := flag(q.Get("listen"))
	if err != nil {
		f.fail(w, r, http.StatusBadRequest, "?listen="+q.Get("listen")+": "+err.Error(), "listen=1 listens")
		return
	}
	if listen {
		opt.Role = pipes.Listen // a live copy; takes a kept item only if one is there and no taker waits
	}
	if t := q.Get("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			f.fail(w, r, http.StatusBadRequest, fmt.Sprintf("?timeout=%s is not a duration", t), "e.g. timeout=30s or timeout=5m")
			return
		}
		opt.Timeout = d
	}
	// A receiver without follow that gets only a tail of an item fails
	// with pipes.ErrPartial: the response is cut, never ended cleanly.
	c, done, ok := f.client(w, r, nil)
	if !ok {
		return
	}
	defer done()
	out := &bodyWriter{w: w, rc: http.NewResponseController(w), name: name}
	res, err := c.Receive(r.Context(), name, out, opt)
	if err == nil {
		out.start()
		f.cfg.Log(fmt.Sprintf("GET %q (%s): %d item(s), %d bytes", name, a.who(), res.Items, res.Bytes))
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, pipes.ErrOutput) {
		f.cfg.Log(fmt.Sprintf("GET %q (%s): the client went away after %d bytes; a kept item stays in the pipe", name, a.who(), out.n))
		if out.started {
			panic(http.ErrAbortHandler)
		}
		return
	}
	f.cfg.Log(fmt.Sprintf("GET %q (%s): %d bytes, failed: %v", name, a.who(), out.n, err))
	if !out.started {
		status, hint := statusOf(err)
		f.fail(w, r, status, fmt.Sprintf("receiving from pipe %q: %v", name, err), hint)
		return
	}
	// The body has started: only cutting the response tells the client.
	panic(http.ErrAbortHandler)
}

// bodyWriter writes an item out as the response body, the status line
// first, and flushes every write so live lines reach the client at once.
type bodyWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	name    string
	started bool
	n       int64
}

func (b *bodyWriter) start() {
	if b.started {
		return
	}
	b.started = true
	h := b.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fileName(b.name)}))
	b.w.WriteHeader(http.StatusOK)
}

func (b *bodyWriter) Write(p []byte) (int, error) {
	b.start()
	n, err := b.w.Write(p)
	b.n += int64(n)
	if err == nil {
		err = b.rc.Flush()
	}
	return n, err
}

// fileName is a download's name for a pipe's item.
func fileName(pipe string) string {
	name := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`/\"`, r) {
			return '_'
		}
		return r
	}, pipe)
	if strings.Trim(name, ".") == "" {
		return "item"
	}
	return name
}

// remove drops the pipe's kept items, or with ?item=ID that one item (a
// partial or broken one GET /pipes names).
func (f *Face) remove(w http.ResponseWriter, r *http.Request, name string, a access) {
	c, done, ok := f.client(w, r, nil)
	if !ok {
		return
	}
	defer done()
	if item := r.URL.Query().Get("item"); item != "" {
		if err := c.RemoveItem(r.Context(), name, item); err != nil {
			status, hint := statusOf(err)
			f.fail(w, r, status, err.Error(), hint)
			return
		}
		f.cfg.Log(fmt.Sprintf("DELETE %q item %s (%s)", name, item, a.who()))
		writeJSON(w, http.StatusOK, map[string]any{"pipe": name, "item": item, "removed": 1})
		return
	}
	n, err := c.Remove(r.Context(), name)
	if err != nil {
		status, hint := statusOf(err)
		f.fail(w, r, status, fmt.Sprintf("removing pipe %q: %v", name, err), hint)
		return
	}
	f.cfg.Log(fmt.Sprintf("DELETE %q (%s): %d item(s)", name, a.who(), n))
	writeJSON(w, http.StatusOK, map[string]any{"pipe": name, "removed": n})
}

// pipeInfo is one pipe of GET /pipes: the fields of 'skypipe ls --json'
// but "default" (a client's setting, not the satellite's).
type pipeInfo struct {
	Name      string `json:"name"`
	Items     int    `json:"items"`
	Bytes     uint64 `json:"bytes"`
	Receivers int    `json:"receivers"`
	Whole     int    `json:"whole"`
	Partial   int    `json:"partial"`
	Broken    int    `json:"broken"`
	Sending   int    `json:"sending"`
	// The ids of partial and broken items, oldest first: DELETE
	// /p/NAME?item=ID removes one, as 'skypipe rm NAME --item ID' does.
	PartialItems []string `json:"partial_items"`
	BrokenItems  []string `json:"broken_items"`
}

// list answers the pipes that keep items, those the token names only.
func (f *Face) list(w http.ResponseWriter, r *http.Request, a access) {
	c, done, ok := f.client(w, r, nil)
	if !ok {
		return
	}
	defer done()
	all, err := c.List(r.Context())
	if err != nil {
		status, hint := statusOf(err)
		f.fail(w, r, status, "listing pipes: "+err.Error(), hint)
		return
	}
	out := []pipeInfo{}
	for _, p := range all {
		if a.full || a.scope.Covers(p.Name) {
			out = append(out, pipeInfo{
				Name: p.Name, Items: p.Items, Bytes: p.Bytes, Receivers: p.Receivers,
				Whole: p.Whole, Partial: p.Partial, Broken: p.Broken, Sending: p.Sending,
				PartialItems: nonNil(p.PartialItems), BrokenItems: nonNil(p.BrokenItems),
			})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// nonNil makes an empty list [] in JSON, never null.
func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// flag reads a boolean query parameter: absent, 0/1, true/false.
func flag(v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errors.New("not a boolean")
	}
	return b, nil
}

// statusOf maps a pipes error to an HTTP status and a hint.
func statusOf(err error) (int, string) {
	var ie *pipes.ItemError
	switch {
	case errors.Is(err, pipes.ErrInvalidName):
		return http.StatusBadRequest, fmt.Sprintf("a pipe name is UTF-8 text of at most %d bytes, without control characters", pipes.MaxNameLen)
	case errors.Is(err, pipes.ErrNoItem):
		return http.StatusNotFound, "GET /pipes lists the ids of partial and broken items"
	case errors.Is(err, pipes.ErrTimeout):
		return http.StatusGatewayTimeout, "nothing arrived within ?timeout"
	case errors.Is(err, pipes.ErrPipeFull):
		return http.StatusInsufficientStorage, "drain kept items or drop them (DELETE /p/NAME); the satellite's --max-store caps what it keeps"
	case errors.Is(err, pipes.ErrNotStored), errors.Is(err, pipes.ErrDisconnected):
		return http.StatusServiceUnavailable, "the item was not kept whole; send it again in a moment"
	case errors.As(err, &ie):
		return http.StatusBadGateway, "the item broke before its first byte reached you; a kept item that was not taken whole stays in the pipe"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, "the request body ended before its end"
	}
	return http.StatusInternalServerError, ""
}
