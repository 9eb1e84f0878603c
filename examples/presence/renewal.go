package main

import (
	"context"
	"errors"
	"hash/fnv"
	"log"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-go/ephemeral"
)

// renewals is the members that the open event streams of a server keep alive, by room. A page
// that has its stream open sends no heartbeats: the server touches its member every heartbeat
// interval instead, quietly as a heartbeat does, while the member is in the room (as the stream
// sees it in the room's state and events). When the page goes away, so does its stream, and the
// member expires one TTL after its last touch at most, unless the page left. Each heartbeat was
// an HTTP request and a store call; at 2,000 rooms of 10 the heartbeat handler took about a
// quarter of a server's CPU (docs/PERFORMANCE.md).
//
// A room has one timer in the process, not one per stream: at the room's phase of the interval
// (see renewPhase) it touches the members of all the room's streams at once, in one
// [ephemeral.Store.TouchMany] (one script call on Redis for a room of up to 64 members). The
// touches run apart from the streams: a slow one holds no stream's events. When a room has no
// member to renew, its timer ends. A room's touches are not sent again while the last ones are
// in flight: a backend that is slower than the heartbeat would otherwise get more touches of
// the room at each heartbeat, all late.
type renewals struct {
	s *server // its store, and its heartbeat interval

	mu    sync.Mutex
	rooms map[string]*roomRenewals // the rooms with a member to renew, or a timer to end

	skipped atomic.Int64 // heartbeats of a room without touches: the last were in flight
}

// roomRenewals is the members that the streams of one room renew; renewals.mu guards it.
type roomRenewals struct {
	name  string
	phase time.Duration         // the room's offset in the heartbeat interval
	live  map[*renewal]struct{} // the renewals whose member is in the room
	timer *time.Timer
	busy  bool // its touches are in flight
}

// renewal is the member that an event stream keeps alive.
type renewal struct {
	rs   *renewals
	room string
	id   string
	// live and gen are guarded by rs.mu.
	live bool   // the member is in the room, as the stream last saw: its room renews it
	gen  uint64 // counts the times live was set: a touch's result applies to its own
	// tokenExp is the expiry of the last renewal token the page got, Unix seconds: the one of
	// the stream's URL, then those the stream sent (see forward). Only the stream uses it.
	tokenExp int64
}

func newRenewals(s *server) *renewals {
	return &renewals{s: s, rooms: map[string]*roomRenewals{}}
}

// stream returns the renewal of a stream of room that names the member id; it renews the member
// once the stream sees it in the room (setLive).
func (rs *renewals) stream(room, id string) *renewal {
	return &renewal{rs: rs, room: room, id: id}
}

// setLive records whether the member is in the room, as the stream sees it: while it is, the
// room's timer touches it.
func (m *renewal) setLive(live bool) {
	rs := m.rs
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if live == m.live {
		return
	}
	m.live = live
	if !live {
		delete(rs.rooms[m.room].live, m)
		return
	}
	m.gen++
	rr := rs.rooms[m.room]
	if rr == nil {
		rr = &roomRenewals{name: m.room, phase: rs.s.renewPhase(m.room), live: map[*renewal]struct{}{}}
		rs.rooms[m.room] = rr
	}
	rr.live[m] = struct{}{}
	if rr.timer == nil {
		rr.timer = time.AfterFunc(time.Until(rs.s.renewAt(rr.phase, time.Now())), func() { rs.renew(rr) })
	}
}

// renew touches the members of room rr, quietly, unless its last touches are still in flight,
// and sets its timer for the next heartbeat.
// A member that is gone is not touched again until its stream sees it back: the stream sends
// its delete or expire, and the page joins again. A room without members loses its timer.
func (rs *renewals) renew(rr *roomRenewals) {
	rs.mu.Lock()
	if len(rr.live) == 0 {
		delete(rs.rooms, rr.name)
		rs.mu.Unlock()
		return
	}
	now := time.Now()
	rr.timer.Reset(rs.s.renewAt(rr.phase, now).Sub(now))
	if rr.busy {
		rs.skipped.Add(1)
		rs.mu.Unlock()
		return
	}
	rr.busy = true
	// The streams of a member, as many as its page opened, and their gens at this moment.
	members := map[string]map[*renewal]uint64{}
	for m := range rr.live {
		if members[m.id] == nil {
			members[m.id] = map[*renewal]uint64{}
		}
		members[m.id][m] = m.gen
	}
	rs.mu.Unlock()

	// A touch later than the TTL it renews is too late: the member expired.
	ctx, cancel := context.WithTimeout(context.Background(), rs.s.store.DefaultTTL())
	defer cancel()
	ids := slices.Collect(maps.Keys(members))
	res, err := rs.s.store.TouchMany(ctx, ids, ephemeral.WithTenant(rr.name), ephemeral.Quiet())
	if err != nil && !errors.Is(err, ephemeral.ErrClosed) { // closed: the server is stopping
		log.Printf("presence: renew %d members of %s: %v", len(ids), rr.name, err) // again at the next heartbeat
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rr.busy = false
	for i, r := range res { // none when the call failed
		if r.OK {
			continue
		}
		for m, gen := range members[ids[i]] {
			if m.live && m.gen == gen { // not seen back in the room since the touch began
				m.live = false
				delete(rr.live, m)
			}
		}
	}
}

// renewPhase returns the room's phase of the heartbeat interval: an offset of the interval of
// its own, from the room's name, a whole number of renewSlots. The members of a room are
// touched at the same moments, and the rooms spread over the interval.
func (s *server) renewPhase(room string) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(room))
	slots := max(s.heartbeat/renewSlot, 1)
	return time.Duration(h.Sum64()%uint64(slots)) * renewSlot
}

// renewSlot is the step of the rooms' phases. The rooms of one slot are touched at the same
// moment, each room with a call of its own: on Redis those calls go together, in a pipeline
// of the backend's, where rooms at phases of their own would each take a round trip.
const renewSlot = 25 * time.Millisecond

// renewAt returns the first time after now at phase of the heartbeat interval.
func (s *server) renewAt(phase time.Duration, now time.Time) time.Time {
	t := now.Truncate(s.heartbeat).Add(phase)
	if !t.After(now) {
		t = t.Add(s.heartbeat)
	}
	return t
}
