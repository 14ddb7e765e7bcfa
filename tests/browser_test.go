package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// helperBrowser drives the satellite's page in headless Chromium, as a
// person would on a phone: it types the token (from SKYPIPE_TEST_TOKEN,
// never on a command line) and the pipe's name, then
//
//	browser send URL PIPE FILE   chooses FILE in the page's file input and
//	                             waits until the page says it was sent
//	browser recv URL PIPE FILE   taps "Take the next item", waits until the
//	                             page saved the download, and moves it to
//	                             FILE; the page's status lines go to
//	                             FILE.status as they change
//
// It exits 1, with the page's status on stderr, if the page reports an
// error (a broken item, a refused token), and gives up after two minutes.
func helperBrowser() int {
	dieWithParent()
	if len(os.Args) != 5 || (os.Args[1] != "send" && os.Args[1] != "recv") {
		return usageExit("browser send|recv URL PIPE FILE")
	}
	mode, base, pipe, file := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	exe, err := chromiumPath()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	profile, err := os.MkdirTemp("", "skypipe-chromium-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Names resolve nowhere: the page is on a loopback address, and
		// nothing else may be reached (no DNS traffic either).
		chromedp.Flag("dns-prefetch-disable", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(412, 915), // a phone's screen
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	downloads := filepath.Join(profile, "downloads")
	done := make(chan string, 1)
	progress := chromedp.Events(bctx, browser.DownloadProgress)
	eyes := true
	err = chromedp.Do(bctx,
		chromedp.Navigate(strings.TrimSuffix(base, "/")+"/"),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior:      browser.SetDownloadBehaviorBehaviorAllowAndName,
				DownloadPath:  downloads,
				EventsEnabled: &eyes,
			})
			return err
		}),
		chromedp.WaitVisible(chromedp.CSS(`body[data-ready="1"]`)),
		chromedp.SetValue(chromedp.ID("token"), os.Getenv("SKYPIPE_TEST_TOKEN")),
		chromedp.SetValue(chromedp.ID("pipe"), pipe),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "opening the page:", err)
		return 1
	}
	go func() {
		for ev, err := range progress {
			if err != nil {
				return
			}
			if ev.State == browser.DownloadProgressStateCompleted {
				done <- ev.GUID
				return
			}
		}
	}()
	if mode == "send" {
		abs, err := filepath.Abs(file)
		if err == nil {
			err = chromedp.Do(bctx, chromedp.SetUploadFiles(chromedp.ID("file"), []string{abs}))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "choosing the file:", err)
			return 1
		}
		status, err := pageOutcome(bctx, "sent ", "")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "page:", status)
		return 0
	}
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.ID("recv"))); err != nil {
		fmt.Fprintln(os.Stderr, "tapping receive:", err)
		return 1
	}
	status, err := pageOutcome(bctx, "received ", file+".status")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "page:", status)
	select {
	case guid := <-done:
		if err := os.Rename(filepath.Join(downloads, guid), file); err != nil {
			fmt.Fprintln(os.Stderr, "the download:", err)
			return 1
		}
		return 0
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "the page said it saved the item, but no download completed")
		return 1
	}
}

// pageOutcome polls the page's status line until it starts with success or
// the page marks it an error; it copies every new line to statusFile.
func pageOutcome(ctx context.Context, success, statusFile string) (string, error) {
	last := ""
	for {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => { const s = document.getElementById("status"); return [s.textContent, s.dataset.state || ""]; })()`))
		text, state := "", ""
		if len(st) == 2 {
			text, state = st[0], st[1]
		}
		if err != nil {
			return last, fmt.Errorf("reading the page (last status %q): %w", last, err)
		}
		if text != last && statusFile != "" {
			f, err := os.OpenFile(statusFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err == nil {
				fmt.Fprintln(f, text)
				f.Close()
			}
		}
		last = text
		switch {
		case state == "error":
			return text, errors.New("the page says: " + text)
		case strings.HasPrefix(text, success):
			return text, nil
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("gave up waiting on the page (last status %q)", last)
		case <-time.After(50 * time.Millisecond): // polling the page, as a person looks at it
		}
	}
}

// chromiumPath finds Debian's chromium.
func chromiumPath() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium is not installed: apt-get install chromium (.ci/run installs it)")
}
