package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium returns the path of Debian's Chromium, or "" when it is not installed.
func chromium() string {
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	return ""
}

// TestBrowser builds the page's program, serves it, and drives the page in headless Chromium:
// an entry appears, expires after its TTL and its expire is logged; then, on a page with the
// default TTL, an entry is kept (a touch) and marked done (a delete).
//
// The test clicks with the DOM's click(), not with synthetic mouse input, which a busy
// Chromium may drop before it first paints the page; it waits for DOM conditions, polled in
// the page.
func TestBrowser(t *testing.T) {
	path := chromium()
	if path == "" {
		t.Skip("Chromium not found (apt-get install chromium): skipping the browser test")
	}
	h, err := newHandler() // builds the program: tens of seconds on a busy machine
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Without UserDataDir the allocator runs Chromium on a fresh profile directory and removes
	// it afterwards. Chromium talks to us over a pipe: it opens no port.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-breakpad", true),
		// Without /dev/shm, Chromium keeps its shared memory under TMPDIR, in directories it
		// does not always remove: the test's own, removed after it.
		chromedp.Env("TMPDIR="+t.TempDir()),
	)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(allocCtx)
	defer func() {
		cancelTab()
		cancelAlloc()
		chromedp.FromContext(allocCtx).Allocator.Wait() // the Chromium process has exited
	}()
	// Start the browser and the tab on tab itself, so that they live as long as it does.
	must(t, "start Chromium", chromedp.Do(tab))

	const ttl = 2 * time.Second
	load(t, tab, srv.URL+"/?ttl="+ttl.String())
	status, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("status").textContent`))
	must(t, "read the status line", err)
	if want := "Entries live 2s unless kept."; status != want {
		t.Fatalf("the page says %q, want %q", status, want)
	}
	added := time.Now()
	add(t, tab, "water the plants")
	waitFor(t, tab, present(entry("water the plants")), 10*time.Second)
	waitFor(t, tab, present(change("water the plants", "added", "")), 10*time.Second)
	waitFor(t, tab, "!"+present(entry("water the plants")), ttl+10*time.Second)
	// The entry was put after added and lives for the TTL (in whole milliseconds, by the
	// browser's clock): it cannot be gone much sooner.
	if d := time.Since(added); d < ttl-50*time.Millisecond {
		t.Errorf("the entry was gone %v after it was added, before its TTL of %v", d, ttl)
	}
	waitFor(t, tab, present(change("water the plants", "removed", "expire")), 5*time.Second)

	load(t, tab, srv.URL+"/")
	add(t, tab, "call Ada")
	waitFor(t, tab, present(entry("call Ada")), 10*time.Second)
	click(t, tab, entry("call Ada")+` button[data-action="keep"]`)
	waitFor(t, tab, present(change("call Ada", "touched", "")), 10*time.Second)
	click(t, tab, entry("call Ada")+` button[data-action="done"]`)
	waitFor(t, tab, present(change("call Ada", "removed", "delete")), 10*time.Second)
	waitFor(t, tab, "!"+present(entry("call Ada")), 5*time.Second)
	line, err := chromedp.Run(tab, chromedp.Evaluate[string](fmt.Sprintf(
		`document.querySelector(%s).textContent`, strconv.Quote(change("call Ada", "removed", "delete")))))
	must(t, "read the log", err)
	if want := `v3 removed "call Ada" (delete: done)`; !strings.HasSuffix(line, want) {
		t.Errorf("the log says %q, want it to end in %q", line, want)
	}
	shown, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("error").textContent`))
	must(t, "read the error line", err)
	if shown != "" {
		t.Errorf("the page shows the error %q", shown)
	}
}

// load opens url in the tab of ctx and waits until the page's program is ready.
func load(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	must(t, "load "+url, chromedp.Do(ctx, chromedp.Navigate(url)))
	waitFor(t, ctx, `!document.getElementById("fields").disabled`, 30*time.Second)
}

// add adds an entry with the text on the page of ctx.
func add(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`document.getElementById("text").value = %s; true`, strconv.Quote(text))))
	must(t, "type "+text, err)
	click(t, ctx, `#add button`)
}

// click clicks the element matching the CSS selector sel on the page of ctx.
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`document.querySelector(%s).click(); true`, strconv.Quote(sel))))
	must(t, "click "+sel, err)
}

// entry selects the list entry with the text.
func entry(text string) string { return fmt.Sprintf(`#entries li[data-key=%q]`, text) }

// change selects the log lines of changes of kind (and cause) of the entry with the text.
func change(text, kind, cause string) string {
	return fmt.Sprintf(`#changes li[data-key=%q][data-kind=%q][data-cause=%q]`, text, kind, cause)
}

// present returns a JavaScript expression that is true when an element matches the CSS
// selector sel.
func present(sel string) string {
	return fmt.Sprintf(`(document.querySelector(%s) !== null)`, strconv.Quote(sel))
}

// waitFor waits up to limit until the JavaScript expression cond is true on the page of ctx.
func waitFor(t *testing.T, ctx context.Context, cond string, limit time.Duration) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(limit)))
	must(t, "wait for "+cond, err)
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
