package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetrics checks that the metrics server serves, in the Prometheus text format, the
// store's metrics and the rejections after some joins, and that the app's own address does
// not serve them.
func TestMetrics(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL, guard: limitsWith(func(l *Limits) { l.Streams, l.JoinRate, l.JoinBurst = 1, 1, 3 }), metrics: true})
	stopClock(a) // no join refills the burst
	s := a.openStream(t, "r", "")
	s.nextState(t)
	for _, name := range []string{"Ada", "Grace", "Carol"} {
		a.join(t, "r", name)
		s.nextMember(t, "upsert") // the stream's reader got the event
	}
	if code, _ := a.post(t, "/rooms/r/join", url.Values{"name": {"Mallory"}}); code != http.StatusTooManyRequests {
		t.Fatalf("fourth join: %d, want 429", code)
	}
	resp, err := http.Get(a.url + "/rooms/r/events") // a second stream of the client
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second stream: %d, want 429", resp.StatusCode)
	}

	code, header, body := get(t, a.metrics)
	ctype := header.Get("Content-Type")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") {
		t.Fatalf("GET /metrics: %d %q", code, ctype)
	}
	for _, want := range []string{
		`ephemeral_events_delivered_total{kind="upsert",store="presence"} 3`,
		`ephemeral_delivery_lag_seconds_count{store="presence"} 3`,
		`presence_rejections_total{reason="join_rate"} 1`,
		`presence_rejections_total{reason="streams"} 1`,
		`presence_rejections_total{reason="room_full"} 0`,
		`ephemeral_overflows_total{store="presence"} 0`, // made by Init
		`# TYPE go_goroutines gauge`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if code, _, _ := get(t, a.url+"/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics on the app's address: %d, want 404", code)
	}
}

// get returns the status, header and body of a GET of url.
func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// wantRejected checks that n requests were refused for reason.
func (a *app) wantRejected(t *testing.T, reason string, n float64) {
	t.Helper()
	if got := testutil.ToFloat64(a.srv.rejected.WithLabelValues(reason)); got != n {
		t.Errorf("presence_rejections_total{reason=%q} = %v, want %v", reason, got, n)
	}
}

// TestMetricsSlowBody checks that a request to the metrics server whose body comes a byte at
// a time does not hold its connection: net/http reads what is left of an unread body, up to
// 256 KB, before it writes the answer, and only the read timeout ends that wait.
func TestMetricsSlowBody(t *testing.T) {
	const read = 300 * time.Millisecond
	a := startApp(t, appConfig{ttl: testTTL, metrics: true, metricsTimeouts: timeouts{read: read}})
	u, err := url.Parse(a.metrics)
	if err != nil {
		t.Fatal(err)
	}
	conn := dialFrom(t, nil, u.Host)
	_, err = io.WriteString(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx")
	if err != nil {
		t.Fatal(err)
	}
	// The rest of the body, a byte every 100 ms: it would take 100 s.
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if _, err := io.WriteString(conn, "x"); err != nil {
				return // closed by the server
			}
		}
	}()
	// Far more than the read timeout, far less than the body takes or the test may.
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.Copy(io.Discard, conn) // until the server closes the connection
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		t.Fatalf("the metrics server still holds a connection whose body trickles in after 20 s "+
			"(read timeout %v)", read)
	}
}

// TestProfiles checks that the metrics server serves the Go profiles of net/http/pprof, a CPU
// profile among them, and that the app's own address does not.
func TestProfiles(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL, metrics: true})
	base := strings.TrimSuffix(a.metrics, "/metrics")
	code, _, body := get(t, base+"/debug/pprof/profile?seconds=1")
	if code != http.StatusOK || !strings.HasPrefix(body, "\x1f\x8b") {
		t.Errorf("GET /debug/pprof/profile: %d, %d bytes %.40q, want a gzipped profile", code, len(body), body)
	}
	if code, _, body := get(t, base+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("GET /debug/pprof/: %d %.200q, want the index", code, body)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/profile?seconds=1", "/debug/pprof/heap"} {
		if code, _, _ := get(t, a.url+path); code != http.StatusNotFound {
			t.Errorf("GET %s on the app's address: %d, want 404", path, code)
		}
	}
}
