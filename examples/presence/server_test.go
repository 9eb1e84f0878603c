package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

const testTTL = 9 * time.Second

// fakeApp starts the app on a memory backend whose clock only moves when the test says so.
func fakeApp(t *testing.T) (*app, *memstore.FakeClock) {
	t.Helper()
	return fakeAppWith(t, appConfig{})
}

// fakeAppWith is fakeApp with cfg, whose clock it sets, and whose TTL is testTTL unless set.
func fakeAppWith(t *testing.T, cfg appConfig) (*app, *memstore.FakeClock) {
	t.Helper()
	clock := memstore.NewFakeClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	cfg.clock = clock
	if cfg.ttl == 0 {
		cfg.ttl = testTTL
	}
	return startApp(t, cfg), clock
}

// post sends a form to the app as a same-origin page would, and returns the status and body.
func (a *app) post(t *testing.T, path string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(a.url+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// join joins room as name and returns the answer.
func (a *app) join(t *testing.T, room, name string) joined {
	t.Helper()
	code, body := a.post(t, "/rooms/"+room+"/join", url.Values{"name": {name}})
	if code != http.StatusOK {
		t.Fatalf("join %s as %q: %d %s", room, name, code, body)
	}
	var j joined
	if err := json.Unmarshal([]byte(body), &j); err != nil {
		t.Fatalf("join answer %q: %v", body, err)
	}
	return j
}

// renewQuery is the query of the URL of the member's event stream, which names it.
func (j joined) renewQuery() url.Values { return url.Values{"id": {j.ID}, "renew": {j.Renew}} }

func (j joined) form(extra ...string) url.Values {
	v := url.Values{"id": {j.ID}, "token": {j.Token}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

// message is one Server-Sent Event.
type message struct {
	id, event, data string
	ping            bool // a comment line, the keep-alive
}

// stream is a test's connection to a room's event stream.
type stream struct {
	body io.Closer
	r    *bufio.Reader
}

// openStream connects to room's events, sending lastID as Last-Event-ID unless it is empty.
// The connection ends with the test, or after 10 s at the latest, so a missing event fails the
// test instead of hanging it.
func (a *app) openStream(t *testing.T, room, lastID string) *stream {
	t.Helper()
	return a.openStreamQuery(t, room, nil, lastID)
}

// openStreamQuery is openStream with the query of the stream's URL, nil for none.
func (a *app) openStreamQuery(t *testing.T, room string, query url.Values, lastID string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	path := "/rooms/" + room + "/events"
	if query != nil {
		path += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, "GET", a.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("events: %d %q", resp.StatusCode, ct)
	}
	return &stream{body: resp.Body, r: bufio.NewReader(resp.Body)}
}

// nextRaw returns the next message or keep-alive comment.
func (s *stream) nextRaw(t *testing.T) message {
	t.Helper()
	var m message
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("read event stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		field, value, _ := strings.Cut(line, ": ")
		switch {
		case line == "":
			if m.ping || m.event != "" || m.id != "" {
				return m
			}
		case line == ":":
			m.ping = true
		case field == "id":
			m.id = value
		case field == "event":
			m.event = value
		case field == "data":
			m.data = value
		case field == "retry":
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
}

// next returns the next message, skipping keep-alives.
func (s *stream) next(t *testing.T) message {
	t.Helper()
	for {
		if m := s.nextRaw(t); !m.ping {
			return m
		}
	}
}

func (s *stream) nextState(t *testing.T) (message, stateMessage) {
	t.Helper()
	m := s.next(t)
	var st stateMessage
	if m.event != "state" || json.Unmarshal([]byte(m.data), &st) != nil {
		t.Fatalf("got %+v, want a state message", m)
	}
	return m, st
}

func (s *stream) nextMember(t *testing.T, event string) (message, memberView) {
	t.Helper()
	m := s.next(t)
	var v memberView
	if m.event != event || json.Unmarshal([]byte(m.data), &v) != nil {
		t.Fatalf("got %+v, want an %s message", m, event)
	}
	return m, v
}

func (s *stream) nextGone(t *testing.T, event string) goneMessage {
	t.Helper()
	m := s.next(t)
	var g goneMessage
	if m.event != event || json.Unmarshal([]byte(m.data), &g) != nil {
		t.Fatalf("got %+v, want a %s message", m, event)
	}
	return g
}

// names returns the sorted names of ms, comma-separated.
func names(ms []memberView) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func TestJoinAndLeave(t *testing.T) {
	a, clock := fakeApp(t)
	s := a.openStream(t, "r1", "")
	if _, st := s.nextState(t); len(st.Members) != 0 || st.Now == 0 {
		t.Fatalf("initial state %+v, want an empty room", st)
	}
	ada := a.join(t, "r1", "  Ada <b>Lovelace</b> ")
	if ada.HeartbeatMS != (testTTL / 3).Milliseconds() {
		t.Errorf("heartbeat %d ms, want %d", ada.HeartbeatMS, (testTTL / 3).Milliseconds())
	}
	_, m := s.nextMember(t, "upsert")
	want := memberView{ID: ada.ID, Name: "Ada <b>Lovelace</b>", Status: StatusActive, JoinedAt: clock.Now().UnixMilli()}
	if m != want {
		t.Errorf("upsert %+v, want %+v", m, want)
	}
	if code, body := a.post(t, "/rooms/r1/leave", ada.form()); code != http.StatusNoContent {
		t.Fatalf("leave: %d %s", code, body)
	}
	if g := s.nextGone(t, "delete"); g != (goneMessage{ID: ada.ID, Reason: "left"}) {
		t.Errorf("delete %+v", g)
	}
	// Rooms are tenants: the other room's stream saw nothing of it.
	other := a.openStream(t, "r2", "")
	if _, st := other.nextState(t); len(st.Members) != 0 {
		t.Errorf("room r2 has %+v", st.Members)
	}
}

// TestHeartbeatAndExpiry checks that heartbeats keep a member alive without a message to the
// pages, and that a member whose heartbeats stop expires and is reported.
func TestHeartbeatAndExpiry(t *testing.T) {
	a, clock := fakeApp(t)
	ada := a.join(t, "r", "Ada")
	s := a.openStream(t, "r", "")
	if _, st := s.nextState(t); names(st.Members) != "Ada" {
		t.Fatalf("state %+v", st)
	}
	for range 3 { // 3 × 2/3 TTL: twice the TTL in all
		clock.Advance(testTTL * 2 / 3)
		if code, body := a.post(t, "/rooms/r/heartbeat", ada.form()); code != http.StatusOK {
			t.Fatalf("heartbeat: %d %s", code, body)
		}
	}
	clock.Advance(testTTL)
	// The next message is the expiry: the heartbeats sent nothing.
	if g := s.nextGone(t, "expire"); g.ID != ada.ID {
		t.Errorf("expire %+v, want %s", g, ada.ID)
	}
	if code, _ := a.post(t, "/rooms/r/heartbeat", ada.form()); code != http.StatusGone {
		t.Errorf("heartbeat after expiry: %d, want 410", code)
	}
	// The page joins again with its id and keeps it.
	code, body := a.post(t, "/rooms/r/join", ada.form("name", "Ada"))
	if code != http.StatusOK || !strings.Contains(body, `"id":"`+ada.ID+`"`) {
		t.Errorf("rejoin: %d %s, want id %s", code, body, ada.ID)
	}
	if code, _ := a.post(t, "/rooms/r/join", ada.form("name", "Ada")); code != http.StatusConflict {
		t.Errorf("second join of a live member: %d, want 409", code)
	}
}

// loadPage gets the room's page and returns the member id and tokens it carries.
func (a *app) loadPage(t *testing.T, room string) joined {
	t.Helper()
	code, header, body := get(t, a.url+"/rooms/"+room)
	m := memberAttrs.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("page of %s: %d, no member id and token in %.300q", room, code, body)
	}
	if cc := header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("page's Cache-Control %q, want no-store: its member id and token are its own", cc)
	}
	return joined{ID: m[1], Token: m[2], Renew: m[3]}
}

// TestStreamRenewsMember: a page whose event stream names its member sends no heartbeats; the
// stream keeps the member alive while it is open, and the member expires when it closes.
func TestStreamRenewsMember(t *testing.T) {
	// Renewals are due on the wall clock every heartbeat; the TTL runs on the fake clock.
	a, clock := fakeAppWith(t, appConfig{heartbeat: 5 * time.Millisecond})
	ada := a.loadPage(t, "r")
	if other := a.loadPage(t, "r"); other.ID == ada.ID {
		t.Fatalf("two pages got the member id %s", ada.ID)
	}
	s := a.openStreamQuery(t, "r", ada.renewQuery(), "")
	if _, st := s.nextState(t); len(st.Members) != 0 {
		t.Fatalf("state %+v", st)
	}
	witness := a.openStream(t, "r", "")
	witness.nextState(t)
	code, body := a.post(t, "/rooms/r/join", ada.form("name", "Ada"))
	if code != http.StatusOK || !strings.Contains(body, `"id":"`+ada.ID+`"`) {
		t.Fatalf("join with the page's id: %d %s, want id %s", code, body, ada.ID)
	}
	if _, m := s.nextMember(t, "upsert"); m.ID != ada.ID {
		t.Fatalf("upsert %+v, want %s", m, ada.ID)
	}
	ctx := context.Background()
	for i := range 3 { // 3 × 2/3 TTL: twice the TTL in all, and not one heartbeat
		clock.Advance(testTTL * 2 / 3)
		want := clock.Now().Add(testTTL)
		deadline := time.Now().Add(10 * time.Second)
		for {
			e, ok, err := a.store.Get(ctx, ada.ID, ephemeral.WithTenant("r"))
			if err != nil || !ok {
				t.Fatalf("after %d × 2/3 TTL: get Ada: %v, %v", i+1, ok, err)
			}
			if !e.ExpiresAt.Before(want) {
				break // renewed since the clock moved
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %d × 2/3 TTL: Ada expires at %v, not renewed to %v", i+1, e.ExpiresAt, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// The page goes away without leaving: once its stream is closed, the member expires one
	// TTL after its last renewal. (A renewal that raced the close set it to now + TTL at most.)
	s.body.Close()
	clock.Advance(testTTL + time.Second)
	// The witness saw nothing of Ada since the join: the renewals are quiet.
	if _, m := witness.nextMember(t, "upsert"); m.ID != ada.ID {
		t.Fatalf("upsert %+v, want %s", m, ada.ID)
	}
	if g := witness.nextGone(t, "expire"); g.ID != ada.ID {
		t.Errorf("expire %+v, want %s", g, ada.ID)
	}
}

func TestStreamRefusesBadToken(t *testing.T) {
	a, _ := fakeApp(t)
	ada := a.loadPage(t, "r")
	for _, c := range []struct {
		room  string
		query url.Values
	}{
		{"r", url.Values{"id": {ada.ID}, "renew": {"x" + ada.Renew}}},
		{"r", url.Values{"id": {ada.ID}}},
		{"r", url.Values{"id": {"0123456789abcdef"}, "renew": {ada.Renew}}},
		{"other", ada.renewQuery()}, // the token is the room's
		{"r", ada.form()},           // the member's token is not a renewal token
		{"r", url.Values{"id": {ada.ID}, "renew": {ada.Token}}},
	} {
		// Not get: a stream wrongly opened would never end.
		resp, err := http.Get(a.url + "/rooms/" + c.room + "/events?" + c.query.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("stream of %s with %v: %d, want 403", c.room, c.query, resp.StatusCode)
		}
	}
}

// TestRenewTokenActsNot checks that the renewal token, which the event stream's URL carries
// into logs and histories, keeps its member alive and can do nothing else: a heartbeat, a
// status change or a leave with it is refused, and a join with it does not get the member's
// id.
func TestRenewTokenActsNot(t *testing.T) {
	// Renewals are due on the wall clock every heartbeat; the TTL runs on the fake clock.
	a, clock := fakeAppWith(t, appConfig{heartbeat: 5 * time.Millisecond})
	ada := a.loadPage(t, "r")
	if ada.Renew == "" || ada.Renew == ada.Token {
		t.Fatalf("page's renewal token %q, member token %q: want two different ones", ada.Renew, ada.Token)
	}
	code, body := a.post(t, "/rooms/r/join", ada.form("name", "Ada"))
	var j joined
	if code != http.StatusOK || json.Unmarshal([]byte(body), &j) != nil || j != (joined{ada.ID, ada.Token, ada.Renew, j.HeartbeatMS}) {
		t.Fatalf("join with the page's id: %d %s, want id %s and the page's tokens", code, body, ada.ID)
	}
	s := a.openStreamQuery(t, "r", ada.renewQuery(), "")
	s.nextState(t)

	stolen := joined{ID: ada.ID, Token: ada.Renew} // the renewal token, as the member's
	for _, path := range []string{"heartbeat", "status", "leave"} {
		if code, body := a.post(t, "/rooms/r/"+path, stolen.form("status", "away")); code != http.StatusForbidden {
			t.Errorf("%s with the renewal token: %d %s, want 403", path, code, body)
		}
	}
	e, ok, err := a.store.Get(context.Background(), ada.ID, ephemeral.WithTenant("r"))
	if err != nil || !ok || e.Value.Status != StatusActive || e.Version != 1 {
		t.Fatalf("Ada after the refused writes: %+v, %v, %v; want her as she joined", e, ok, err)
	}
	code, body = a.post(t, "/rooms/r/join", stolen.form("name", "Mallory"))
	if code != http.StatusOK || strings.Contains(body, ada.ID) {
		t.Errorf("join with the renewal token: %d %s, want a member of another id than %s", code, body, ada.ID)
	}

	// What it may do: the stream renews Ada, without a heartbeat.
	clock.Advance(testTTL * 2 / 3)
	want := clock.Now().Add(testTTL)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		e, ok, err := a.store.Get(context.Background(), ada.ID, ephemeral.WithTenant("r"))
		if err != nil || !ok {
			t.Fatalf("get Ada: %v, %v", ok, err)
		}
		if !e.ExpiresAt.Before(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ada expires at %v, not renewed by her stream to %v", e.ExpiresAt, want)
		}
	}
}

// streamCode opens the stream of room with query and returns the answer's status, without
// reading the stream.
func (a *app) streamCode(t *testing.T, room string, query url.Values) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends a stream that opened
	req, err := http.NewRequestWithContext(ctx, "GET", a.url+"/rooms/"+room+"/events?"+query.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRenewTokenExpires checks that a renewal token opens its member's stream until it
// expires, renewTokenLife after it was made, and not after: a stream URL found in a log does
// not keep a crashed page's member alive for ever. A heartbeat answers with a fresh token.
func TestRenewTokenExpires(t *testing.T) {
	a, clock := fakeAppWith(t, appConfig{ttl: time.Hour}) // Ada outlives her tokens
	ada := a.join(t, "r", "Ada")
	expText, mac, _ := strings.Cut(ada.Renew, ".")
	if want := strconv.FormatInt(clock.Now().Add(renewTokenLife).Unix(), 10); expText != want {
		t.Fatalf("renewal token %q, want it to expire at %s", ada.Renew, want)
	}
	later, _ := strconv.ParseInt(expText, 10, 64)
	for _, forged := range []string{
		strconv.FormatInt(later+3600, 10) + "." + mac, // a later expiry, the same HMAC
		mac, // no expiry
		expText + "." + ada.Token,
		expText + ".",
		"." + mac,
	} {
		if code := a.streamCode(t, "r", url.Values{"id": {ada.ID}, "renew": {forged}}); code != http.StatusForbidden {
			t.Errorf("stream with the renewal token %q: %d, want 403", forged, code)
		}
	}

	clock.Advance(renewTokenLife - time.Second)
	if code := a.streamCode(t, "r", ada.renewQuery()); code != http.StatusOK {
		t.Fatalf("stream a second before the token expires: %d, want 200", code)
	}
	clock.Advance(time.Second)
	if code := a.streamCode(t, "r", ada.renewQuery()); code != http.StatusForbidden {
		t.Fatalf("stream when the token expires: %d, want 403", code)
	}

	code, body := a.post(t, "/rooms/r/heartbeat", ada.form())
	var fresh renewed
	if code != http.StatusOK || json.Unmarshal([]byte(body), &fresh) != nil {
		t.Fatalf("heartbeat: %d %s, want a renewal token", code, body)
	}
	ada.Renew = fresh.Renew
	if code := a.streamCode(t, "r", ada.renewQuery()); code != http.StatusOK {
		t.Fatalf("stream with the heartbeat's renewal token %q: %d, want 200", fresh.Renew, code)
	}
	clock.Advance(renewTokenLife)
	if code := a.streamCode(t, "r", ada.renewQuery()); code != http.StatusForbidden {
		t.Fatalf("stream when the heartbeat's token expires: %d, want 403", code)
	}
}

// TestStreamSendsFreshRenewToken checks that an open stream sends its page a fresh renewal
// token once half of the last is spent, and not before: a page whose stream was open for
// longer than a token lives reconnects with a valid one.
func TestStreamSendsFreshRenewToken(t *testing.T) {
	a, clock := fakeAppWith(t, appConfig{ttl: time.Hour, ping: 5 * time.Millisecond})
	ada := a.join(t, "r", "Ada")
	s := a.openStreamQuery(t, "r", ada.renewQuery(), "")
	s.nextState(t)
	clock.Advance(renewTokenLife/2 - time.Second)
	for range 3 { // each ping is a turn of the stream's loop, which looks at the token
		if m := s.nextRaw(t); !m.ping {
			t.Fatalf("message %+v before half the token's life, want only pings", m)
		}
	}
	clock.Advance(time.Second)
	m := s.next(t)
	var fresh renewed
	if m.event != "renew" || m.id != "" || json.Unmarshal([]byte(m.data), &fresh) != nil {
		t.Fatalf("message %+v at half the token's life, want a renewal token without an id", m)
	}
	if want := ada.Renew; fresh.Renew == want {
		t.Fatalf("the stream sent the page's own token %q", want)
	}
	clock.Advance(renewTokenLife/2 + time.Second) // the page's first token has expired
	if code := a.streamCode(t, "r", ada.renewQuery()); code != http.StatusForbidden {
		t.Fatalf("stream with the expired token: %d, want 403", code)
	}
	if code := a.streamCode(t, "r", url.Values{"id": {ada.ID}, "renew": {fresh.Renew}}); code != http.StatusOK {
		t.Fatalf("stream with the token the stream sent: %d, want 200", code)
	}
	// The stream goes on with its first token long expired, and sends the next one once half
	// of the last one's life is spent.
	if m := s.next(t); m.event != "renew" {
		t.Fatalf("message %+v, want the next renewal token", m)
	}
}

func TestStatus(t *testing.T) {
	a, clock := fakeApp(t)
	ada := a.join(t, "r", "Ada")
	joinedAt := clock.Now().UnixMilli()
	s := a.openStream(t, "r", "")
	s.nextState(t)
	clock.Advance(time.Second)
	if code, body := a.post(t, "/rooms/r/status", ada.form("status", "away")); code != http.StatusNoContent {
		t.Fatalf("status: %d %s", code, body)
	}
	if _, m := s.nextMember(t, "upsert"); m.Status != StatusAway || m.JoinedAt != joinedAt {
		t.Errorf("after status: %+v, want away, joined at %d", m, joinedAt)
	}
	if code, _ := a.post(t, "/rooms/r/status", ada.form("status", "asleep")); code != http.StatusBadRequest {
		t.Errorf("unknown status: %d, want 400", code)
	}
	clock.Advance(testTTL)
	s.nextGone(t, "expire")
	if code, _ := a.post(t, "/rooms/r/status", ada.form("status", "active")); code != http.StatusGone {
		t.Errorf("status of an expired member: %d, want 410", code)
	}
}

// TestResume checks that a reconnecting page gets exactly the messages after its last one, and
// the whole state when its cursor is useless.
func TestResume(t *testing.T) {
	a, _ := fakeApp(t)
	a.join(t, "r", "Ada")
	s := a.openStream(t, "r", "")
	s.nextState(t)
	a.join(t, "r", "Grace")
	first, _ := s.nextMember(t, "upsert")
	a.join(t, "r", "Carol")
	second, _ := s.nextMember(t, "upsert")
	s.body.Close()

	resumed := a.openStream(t, "r", first.id)
	if m, v := resumed.nextMember(t, "upsert"); m.id != second.id || v.Name != "Carol" {
		t.Errorf("resumed after %s with %+v %+v, want Carol at %s", first.id, m, v, second.id)
	}

	epoch, _, _ := strings.Cut(first.id, "-")
	for _, last := range []string{
		"garbage",            // not a cursor
		epoch + "-999",       // beyond the room's last event
		"0123456789abcdef-1", // of another epoch: the room's state was lost
	} {
		s := a.openStream(t, "r", last)
		if m, st := s.nextState(t); names(st.Members) != "Ada,Carol,Grace" || m.id != second.id {
			t.Errorf("Last-Event-ID %q: %+v %+v, want the whole room", last, m, st)
		}
	}
}

// TestResumeAfterOverflow checks that a page whose cursor fell out of the retained events gets
// the whole state again.
func TestResumeAfterOverflow(t *testing.T) {
	a, _ := fakeAppWith(t, appConfig{limits: ephemeral.Limits{MaxEvents: 2}})
	s := a.openStream(t, "r", "")
	old, _ := s.nextState(t)
	for _, name := range []string{"Ada", "Grace", "Carol", "Dorothy"} {
		a.join(t, "r", name)
	}
	s.body.Close()
	if _, st := a.openStream(t, "r", old.id).nextState(t); len(st.Members) != 4 {
		t.Errorf("state after overflow has %q, want 4 members", names(st.Members))
	}
}

// TestUnreadableMember checks that a member the server cannot read (written by another program
// or version) does not keep a page from getting the rest of the room.
func TestUnreadableMember(t *testing.T) {
	a, _ := fakeApp(t)
	a.join(t, "r", "Ada")
	raw, err := a.backend.Open(a.store.ID(), a.store.Limits())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Upsert(context.Background(), "r", backend.UpsertRequest{Key: "junk", Value: []byte("{not json"), TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	a.join(t, "r", "Grace")
	if _, st := a.openStream(t, "r", "").nextState(t); names(st.Members) != "Ada,Grace" {
		t.Errorf("state of a room with an unreadable member: %q, want Ada,Grace", names(st.Members))
	}
}

// TestPing checks that a quiet stream sends keep-alives and still delivers the next event.
func TestPing(t *testing.T) {
	a := startApp(t, appConfig{ttl: testTTL, ping: 5 * time.Millisecond})
	s := a.openStream(t, "r", "")
	s.nextState(t)
	if m := s.nextRaw(t); !m.ping {
		t.Fatalf("got %+v, want a keep-alive", m)
	}
	a.join(t, "r", "Ada")
	if _, v := s.nextMember(t, "upsert"); v.Name != "Ada" {
		t.Errorf("upsert %+v", v)
	}
}

func TestValidation(t *testing.T) {
	a, _ := fakeApp(t)
	ada := a.join(t, "r", "Ada")
	for _, tc := range []struct {
		name, path string
		form       url.Values
		want       int
	}{
		{"empty name", "/rooms/r/join", url.Values{"name": {"   "}}, http.StatusBadRequest},
		{"long name", "/rooms/r/join", url.Values{"name": {strings.Repeat("é", maxNameRunes+1)}}, http.StatusBadRequest},
		{"control character", "/rooms/r/join", url.Values{"name": {"Ada\x07"}}, http.StatusBadRequest},
		{"invalid UTF-8", "/rooms/r/join", url.Values{"name": {"Ada\xff"}}, http.StatusBadRequest},
		{"room with capitals", "/rooms/Lobby/join", url.Values{"name": {"Ada"}}, http.StatusNotFound},
		{"room too long", "/rooms/" + strings.Repeat("r", 41) + "/join", url.Values{"name": {"Ada"}}, http.StatusNotFound},
		{"wrong token", "/rooms/r/heartbeat", url.Values{"id": {ada.ID}, "token": {"x" + ada.Token}}, http.StatusForbidden},
		{"token of another room", "/rooms/s/leave", ada.form(), http.StatusForbidden},
		{"no id", "/rooms/r/leave", url.Values{"token": {ada.Token}}, http.StatusForbidden},
		{"huge form", "/rooms/r/join", url.Values{"name": {strings.Repeat("a", 2*maxFormBytes)}}, http.StatusRequestEntityTooLarge},
		{"huge heartbeat", "/rooms/r/heartbeat", url.Values{"id": {ada.ID}, "token": {ada.Token}, "x": {strings.Repeat("a", maxFormBytes)}}, http.StatusRequestEntityTooLarge},
	} {
		if code, body := a.post(t, tc.path, tc.form); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	a.wantRejected(t, rejectTooLarge, 2)

	// A write from another site is refused before it reaches a handler.
	req, _ := http.NewRequest("POST", a.url+"/rooms/r/leave", strings.NewReader(ada.form().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site leave: %d, want 403", resp.StatusCode)
	}
	if _, ok, _ := a.store.Get(context.Background(), ada.ID, ephemeral.WithTenant("r")); !ok {
		t.Error("a refused request removed the member")
	}
}

func TestPages(t *testing.T) {
	a, _ := fakeApp(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		path     string
		code     int
		location string
		contains string
	}{
		{"/", http.StatusSeeOther, "/rooms/lobby", ""},
		{"/?room=design", http.StatusSeeOther, "/rooms/design", ""},
		{"/?room=%3Cscript%3E", http.StatusSeeOther, "/rooms/lobby", ""},
		{"/rooms/design", http.StatusOK, "", `data-room="design"`},
		{"/rooms/a.b", http.StatusNotFound, "", ""},
		{"/static/app.js", http.StatusOK, "", "EventSource"},
		{"/static/style.css", http.StatusOK, "", "body"},
		{"/static/", http.StatusNotFound, "", ""},
		{"/static/room.html", http.StatusNotFound, "", ""},
		{"/static/..%2fserver.go", http.StatusNotFound, "", ""},
		{"/nowhere", http.StatusNotFound, "", ""},
	} {
		resp, err := client.Get(a.url + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("Location") != tc.location || !strings.Contains(string(body), tc.contains) {
			t.Errorf("GET %s: %d, Location %q, want %d %q containing %q", tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.code, tc.location, tc.contains)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); csp != "default-src 'self'; frame-ancestors 'none'" {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", tc.path, got)
		}
	}
}

// TestShutdownEndsStreams checks that shutting the server down ends open event streams, so
// that Shutdown returns at once instead of waiting for clients to go away.
func TestShutdownEndsStreams(t *testing.T) {
	a, _ := fakeApp(t)
	s := a.openStream(t, "r", "")
	s.nextState(t)
	if err := a.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := s.r.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Errorf("stream after shutdown: %v, want EOF", err)
	}
}

// TestClientGoneEndsStream checks that a stream's goroutines, and its reader, end when the
// client goes away.
func TestClientGoneEndsStream(t *testing.T) {
	a, _ := fakeApp(t)
	// One request first, on a connection of its own, so that the server is accepting.
	warmUp := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := warmUp.Get(a.url + "/static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	before := goleak.IgnoreCurrent()
	s := a.openStream(t, "r", "")
	s.nextState(t)
	s.body.Close()
	goleak.VerifyNone(t, before) // retries until the server's goroutines for the stream are gone
}

// TestTouchMovesCursor checks that a (non-quiet) touch by another writer moves the page's
// cursor without a message to show.
func TestTouchMovesCursor(t *testing.T) {
	a, _ := fakeApp(t)
	ada := a.join(t, "r", "Ada")
	s := a.openStream(t, "r", "")
	state, _ := s.nextState(t)
	res, err := a.store.Touch(context.Background(), ada.ID, ephemeral.WithTenant("r"))
	if err != nil || !res.OK {
		t.Fatalf("touch: %+v, %v", res, err)
	}
	epoch, _, _ := strings.Cut(state.id, "-")
	want := message{id: epoch + "-" + strconv.FormatUint(res.Version, 10)}
	if m := s.next(t); m != want {
		t.Errorf("after a touch: %+v, want %+v", m, want)
	}
}

// TestStreamFirstWrite checks that a new stream's first write and flush hold both the retry
// and the state: one flush fewer per stream opened.
func TestStreamFirstWrite(t *testing.T) {
	a, _ := fakeApp(t)
	a.join(t, "r", "Ada")
	w := &flushRecorder{header: http.Header{}, flushed: make(chan string, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// On the app's loopback host, which the app answers for (httptest's is example.com).
		a.srv.ServeHTTP(w, httptest.NewRequestWithContext(ctx, "GET", "http://127.0.0.1/rooms/r/events", nil))
	}()
	var first string
	select {
	case first = <-w.flushed:
	case <-time.After(10 * time.Second):
		t.Error("no flush within 10 s")
	}
	cancel()
	<-done
	if !strings.HasPrefix(first, "retry: 2000\n\n") || !strings.Contains(first, "\nevent: state\ndata: {") ||
		!strings.Contains(first, `"name":"Ada"`) {
		t.Errorf("first flush %q, want the retry and the state with Ada", first)
	}
}

// flushRecorder is an http.ResponseWriter that sends what was written before each flush to
// flushed.
type flushRecorder struct {
	header  http.Header
	mu      sync.Mutex
	buf     []byte
	flushed chan string
}

func (w *flushRecorder) Header() http.Header { return w.header }
func (w *flushRecorder) WriteHeader(int)     {}

func (w *flushRecorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *flushRecorder) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case w.flushed <- string(w.buf):
	default: // the test reads the first flushes only
	}
	w.buf = w.buf[:0]
}
