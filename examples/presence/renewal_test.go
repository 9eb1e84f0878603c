package main

import (
	"bytes"
	"context"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/backend"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

// touchGate is a backend whose stores' quiet touches (the streams' renewals) wait until the
// test opens the gate.
type touchGate struct {
	ephemeral.Backend
	open    chan struct{} // closed by the test: the touches go on
	started chan struct{} // closed at the first quiet touch
	touches atomic.Int64  // quiet calls of Touch or TouchMany begun
	once    sync.Once
}

func newTouchGate(t *testing.T) *touchGate {
	b := memstore.New()
	t.Cleanup(func() { b.Close() })
	return &touchGate{Backend: b, open: make(chan struct{}), started: make(chan struct{})}
}

func (g *touchGate) Open(id string, l backend.Limits) (backend.Store, error) {
	st, err := g.Backend.Open(id, l)
	if err != nil {
		return nil, err
	}
	return gatedStore{st, g}, nil
}

// gatedStore is a store of a touchGate.
type gatedStore struct {
	backend.Store
	g *touchGate
}

func (s gatedStore) Touch(ctx context.Context, tenant string, req backend.TouchRequest) (backend.TouchResult, error) {
	if req.Quiet {
		s.g.wait()
	}
	return s.Store.Touch(ctx, tenant, req)
}

func (s gatedStore) TouchMany(ctx context.Context, tenant string, req backend.TouchManyRequest) ([]backend.TouchResult, error) {
	if req.Quiet {
		s.g.wait()
	}
	return s.Store.TouchMany(ctx, tenant, req)
}

// wait counts a quiet touch and holds it until the gate opens: a backend stuck past the
// context's deadline.
func (g *touchGate) wait() {
	g.touches.Add(1)
	g.once.Do(func() { close(g.started) })
	<-g.open
}

// TestRenewalDoesNotHoldStream checks that a stream forwards the room's events while a
// renewal of its member is in flight: a slow touch does not hold the page's messages.
func TestRenewalDoesNotHoldStream(t *testing.T) {
	gate := newTouchGate(t)
	a := startApp(t, appConfig{ttl: testTTL, backend: gate, heartbeat: time.Millisecond})
	t.Cleanup(func() { close(gate.open) }) // before the app stops: the touches end
	ada := a.loadPage(t, "r")
	s := a.openStreamQuery(t, "r", ada.renewQuery(), "")
	s.nextState(t)
	a.post(t, "/rooms/r/join", ada.form("name", "Ada"))
	if _, m := s.nextMember(t, "upsert"); m.ID != ada.ID {
		t.Fatalf("upsert %+v, want Ada %s", m, ada.ID)
	}
	select {
	case <-gate.started:
	case <-time.After(10 * time.Second):
		t.Fatal("Ada not renewed within 10 s")
	}
	// Ada's renewal waits at the gate; Bob's join reaches her page all the same.
	bob := a.join(t, "r", "Bob")
	if _, m := s.nextMember(t, "upsert"); m.ID != bob.ID {
		t.Fatalf("upsert %+v, want Bob %s", m, bob.ID)
	}
}

// TestRenewalQuietAtShutdown checks that a renewal in flight when the server stops, and the
// backend closes, logs nothing: its error is the stop's, not one an operator should look at.
func TestRenewalQuietAtShutdown(t *testing.T) {
	gate := newTouchGate(t)
	a := startApp(t, appConfig{ttl: testTTL, backend: gate, heartbeat: time.Millisecond})
	ada := a.join(t, "r", "Ada")
	s := a.openStreamQuery(t, "r", ada.renewQuery(), "")
	s.nextState(t)
	select {
	case <-gate.started:
	case <-time.After(10 * time.Second):
		close(gate.open)
		t.Fatal("Ada not renewed within 10 s")
	}
	rs := a.srv.renewals
	rs.mu.Lock()
	rr := rs.rooms["r"]
	rs.mu.Unlock()

	if err := a.stop(); err != nil {
		t.Errorf("serve: %v", err)
	}
	if err := gate.Backend.Close(); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	close(gate.open) // the renewal goes on, on the closed backend
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		rs.mu.Lock()
		busy := rr.busy
		rs.mu.Unlock()
		if !busy {
			break // the renewal returned, and logged what it logs
		}
		if time.Now().After(deadline) {
			t.Fatal("the renewal in flight did not return within 10 s of the gate's opening")
		}
	}
	if strings.Contains(logged.String(), "renew") {
		t.Errorf("a renewal on the closed backend logged: %s", logged.String())
	}
}

// TestRenewalOneTouchInFlight checks that a room's members are not touched again while their
// last touch is in flight: the heartbeats that come meanwhile pass.
func TestRenewalOneTouchInFlight(t *testing.T) {
	gate := newTouchGate(t)
	a := startApp(t, appConfig{ttl: testTTL, backend: gate, heartbeat: time.Millisecond})
	t.Cleanup(func() { close(gate.open) })
	ada := a.loadPage(t, "r")
	s := a.openStreamQuery(t, "r", ada.renewQuery(), "")
	s.nextState(t)
	a.post(t, "/rooms/r/join", ada.form("name", "Ada"))
	s.nextMember(t, "upsert")
	select {
	case <-gate.started:
	case <-time.After(10 * time.Second):
		t.Fatal("Ada not renewed within 10 s")
	}
	for deadline := time.Now().Add(10 * time.Second); a.srv.renewals.skipped.Load() < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeats passed in 10 s, want 3", a.srv.renewals.skipped.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if n := gate.touches.Load(); n != 1 {
		t.Errorf("%d touches begun while the first was in flight, want 1", n)
	}
}

// TestRenewalDropsGoneMember checks that a room stops touching a member that its touch found
// gone, unless the member's stream saw it back in the room while the touch was in flight.
func TestRenewalDropsGoneMember(t *testing.T) {
	gate := newTouchGate(t)
	// The room's own timer would renew it again: its heartbeat is far off.
	a := startApp(t, appConfig{ttl: testTTL, backend: gate, heartbeat: 1000 * time.Hour})
	ada := a.join(t, "r", "Ada")
	rs := a.srv.renewals
	here := rs.stream("r", ada.ID) // in the store
	gone := rs.stream("r", "gone") // never in the store
	back := rs.stream("r", "back") // not in the store, but seen back during the touch
	for _, m := range []*renewal{here, gone, back} {
		m.setLive(true)
	}
	rs.mu.Lock()
	rr := rs.rooms["r"]
	rr.timer.Stop()
	rs.mu.Unlock()

	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		rs.renew(rr)
	}()
	select {
	case <-gate.started:
	case <-time.After(10 * time.Second):
		close(gate.open)
		t.Fatal("the room's touch did not begin within 10 s")
	}
	back.setLive(false) // its stream saw it leave, and join again
	back.setLive(true)
	close(gate.open)
	<-renewed

	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, c := range []struct {
		name string
		m    *renewal
		want bool
	}{{"here", here, true}, {"gone", gone, false}, {"back", back, true}} {
		if _, in := rr.live[c.m]; in != c.want || c.m.live != c.want {
			t.Errorf("%s: in the room's renewals %v, live %v; want %v", c.name, in, c.m.live, c.want)
		}
	}
}

// TestRenewPhase checks that the rooms' phases are whole slots within the heartbeat interval,
// spread over it.
func TestRenewPhase(t *testing.T) {
	s := &server{heartbeat: 10 * time.Second / 3}
	slots := map[time.Duration]bool{}
	for i := range 2000 {
		room := "room-" + strconv.Itoa(i)
		ph := s.renewPhase(room)
		if ph < 0 || ph >= s.heartbeat || ph%renewSlot != 0 {
			t.Fatalf("room %s: phase %v, want a multiple of %v in [0, %v)", room, ph, renewSlot, s.heartbeat)
		}
		slots[ph] = true
	}
	// 133 slots of 25 ms in 3.33 s: 2,000 rooms leave few of them empty.
	if n, all := len(slots), int(s.heartbeat/renewSlot); n < all*9/10 {
		t.Errorf("2,000 rooms in %d slots of %d", n, all)
	}
	// A heartbeat shorter than a slot: every room at the start of the interval.
	s.heartbeat = time.Millisecond
	if ph := s.renewPhase("r"); ph != 0 {
		t.Errorf("phase %v with a 1 ms heartbeat, want 0", ph)
	}
}
