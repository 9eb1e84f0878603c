package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/ephemeral-go/ephemeral"
)

var screenshot = flag.String("screenshot", "", "write a screenshot of two people in a room to this PNG `file` (docs/presence.png)")

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

// envRedis names a Redis server (host:port) to run the browser test on too. .ci/run sets it.
const envRedis = "EPHEMERAL_REDIS_ADDR"

// TestBrowser drives the page in headless Chromium: Ada and Grace join a room and see each
// other, Grace leaves and Ada sees her go (a delete), Carol's tab crashes and Ada sees her
// expire. Every person has a browser context of its own, as separate visitors would. It runs on
// the memory backend, and on Redis when EPHEMERAL_REDIS_ADDR names a server.
func TestBrowser(t *testing.T) {
	path := chromium()
	if path == "" {
		t.Skip("Chromium not found (apt-get install chromium): skipping the browser test")
	}
	t.Run("memory", func(t *testing.T) { testBrowser(t, path, "") })
	t.Run("redis", func(t *testing.T) {
		addr := os.Getenv(envRedis)
		if addr == "" {
			t.Skipf("set %s to run the browser test on Redis", envRedis)
		}
		testBrowser(t, path, addr)
	})
}

func testBrowser(t *testing.T, path, redisAddr string) {
	const ttl = 2 * time.Second
	// Renewal tokens expire on a clock the test moves on, skew ahead of the system's.
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	app := startApp(t, appConfig{ttl: ttl, redis: redisAddr, now: now, ping: 100 * time.Millisecond})
	events := app.reader(t, "demo")
	url := app.url + "/rooms/demo"

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
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
		// Every tab beats on time, also the ones Chromium considers in the background.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.WindowSize(720, 640),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer func() {
		cancelBrowser()
		cancelAlloc()
		chromedp.FromContext(allocCtx).Allocator.Wait() // the Chromium process has exited
	}()
	if err := chromedp.Do(browser); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	visitor := func() (context.Context, context.CancelFunc) {
		return chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	}

	ada, cancelAda := visitor()
	defer cancelAda()
	grace, cancelGrace := visitor()
	defer cancelGrace()
	join(t, ada, url, "Ada Lovelace")
	join(t, grace, url, "Grace Hopper")
	waitPresent(t, ada, "Grace Hopper")
	waitPresent(t, grace, "Ada Lovelace")
	events.expect(t, ephemeral.EventUpsert, "Ada Lovelace")
	events.expect(t, ephemeral.EventUpsert, "Grace Hopper")

	// Half of the life of Ada's renewal token is spent: her stream sends a fresh one, which
	// her page takes for its next stream.
	first := pageRenewToken(t, ada)
	skew.Add(int64(renewTokenLife / 2))
	for deadline := time.Now().Add(10 * time.Second); pageRenewToken(t, ada) == first; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Ada's page still has the renewal token %q 10 s after half of its life", first)
		}
	}

	// Grace switches to another tab (the test fakes the page's visibility): Ada sees her away.
	_, err := chromedp.Run(grace, chromedp.Evaluate[bool](`
		Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
		document.dispatchEvent(new Event("visibilitychange"));
		true`))
	must(t, "Grace hides her tab", err)
	waitVisible(t, ada, memberSelector("Grace Hopper")+`[data-status="away"]`)
	if ev := events.expect(t, ephemeral.EventUpsert, "Grace Hopper"); ev.Value.Status != StatusAway {
		t.Errorf("Grace's status = %q, want away", ev.Value.Status)
	}
	if *screenshot != "" && redisAddr == "" {
		saveScreenshot(t, ada, *screenshot)
	}

	// Grace navigates away: the page's pagehide beacon removes her at once.
	left := time.Now()
	must(t, "Grace navigates away", chromedp.Do(grace, chromedp.Navigate("about:blank")))
	waitAbsent(t, ada, "Grace Hopper", ttl+time.Second)
	t.Logf("Grace disappeared from Ada's page %v after she navigated away", time.Since(left).Round(time.Millisecond))
	// A delete, not an expiry: her page left.
	if ev := events.expect(t, ephemeral.EventDelete, "Grace Hopper"); ev.Reason != "left" {
		t.Errorf("Grace's delete reason = %q, want %q", ev.Reason, "left")
	}

	// Carol's renderer crashes: no pagehide, no beacon, no more heartbeats.
	carol, cancelCarol := visitor()
	defer cancelCarol()
	join(t, carol, url, "Carol Shaw")
	waitPresent(t, ada, "Carol Shaw")
	events.expect(t, ephemeral.EventUpsert, "Carol Shaw")
	crashed := time.Now()
	// A crashed renderer never answers the command: give it a moment, then close the tab.
	crashCtx, cancelCrash := context.WithTimeout(carol, time.Second)
	_, _ = chromedp.Run(crashCtx, func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
		return cdp.Call(ctx, t, page.Crash, cdp.Empty{})
	})
	cancelCrash()
	cancelCarol()
	// Her last heartbeat was at most ttl/3 before the crash: she expires by ttl after it, and
	// the expire event reaches the page within a second.
	waitAbsent(t, ada, "Carol Shaw", ttl+time.Second)
	events.expect(t, ephemeral.EventExpire, "Carol Shaw")
	t.Logf("Carol disappeared from Ada's page %v after the crash (ttl %v)", time.Since(crashed).Round(time.Millisecond), ttl)
	waitPresent(t, ada, "Ada Lovelace") // Ada herself is still there, beating
}

// pageRenewToken returns the renewal token that the page of ctx names in its next stream.
func pageRenewToken(t *testing.T, ctx context.Context) string {
	t.Helper()
	token, err := chromedp.Run(ctx, chromedp.Evaluate[string](`renew`))
	must(t, "read the page's renewal token", err)
	return token
}

// join opens the room page in the tab of ctx and joins as name.
func join(t *testing.T, ctx context.Context, url, name string) {
	t.Helper()
	must(t, name+" opens the room", chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`#name`)),
		chromedp.SetValue(chromedp.CSS(`#name`), name),
	))
	// The DOM's click(), not synthetic mouse input, which a busy Chromium may drop.
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#join-button").click(); true`))
	must(t, name+" clicks Join", err)
	must(t, name+" joins", chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`#you`)),
		chromedp.WaitVisible(chromedp.CSS(memberSelector(name))),
	))
}

// memberSelector selects name's entry in the member list.
func memberSelector(name string) string { return fmt.Sprintf(`#members li[data-name=%q]`, name) }

// waitPresent waits until name is in the member list of the page of ctx.
func waitPresent(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	waitVisible(t, ctx, memberSelector(name))
}

// waitVisible waits up to 5 s until an element matching the CSS selector sel is visible on
// the page of ctx.
func waitVisible(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	must(t, "wait for "+sel, chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(sel))))
}

// waitAbsent waits up to limit for name to leave the page of ctx.
func waitAbsent(t *testing.T, ctx context.Context, name string, limit time.Duration) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	must(t, name+" disappears within "+limit.String(), chromedp.Do(wctx, chromedp.WaitNotPresent(chromedp.CSS(memberSelector(name)))))
}

func saveScreenshot(t *testing.T, ctx context.Context, file string) {
	t.Helper()
	// Wait for the entry animations to finish, so that nobody is caught half faded in.
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getAnimations().length === 0`))
	must(t, "wait for animations", err)
	png, err := chromedp.Run(ctx, chromedp.ScreenshotScale(chromedp.CSS(`main`), 2))
	must(t, "screenshot", err)
	must(t, "write screenshot", os.WriteFile(file, png, 0o644))
	t.Logf("wrote %s", file)
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
