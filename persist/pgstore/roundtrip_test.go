package pgstore

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// wire counts what the store's connections send: round trips (each time
// the client writes after it has read, or first) and statements executed
// (Execute messages of the extended protocol, Query messages of the simple
// one).
type wire struct {
	mu         sync.Mutex
	roundTrips int
	statements int
	bytesOut   int
}

func (w *wire) counts() (roundTrips, statements int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.roundTrips, w.statements
}

func (w *wire) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.roundTrips, w.statements, w.bytesOut = 0, 0, 0
}

// countedConn is one connection of the pool, counted into w.
type countedConn struct {
	net.Conn
	w        *wire
	readLast bool // the last operation was a read: the next write starts a round trip
	started  bool // the startup message (which has no type byte) has been sent
}

func (c *countedConn) Write(b []byte) (int, error) {
	c.w.mu.Lock()
	if c.readLast || !c.started {
		c.w.roundTrips++
	}
	c.readLast = false
	c.w.bytesOut += len(b)
	msgs := b
	if !c.started {
		c.started = true
		msgs = nil
	}
	for len(msgs) >= 5 {
		switch msgs[0] {
		case 'E', 'Q':
			c.w.statements++
		}
		n := int(binary.BigEndian.Uint32(msgs[1:5]))
		if n < 4 || n+1 > len(msgs) {
			break
		}
		msgs = msgs[1+n:]
	}
	c.w.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.w.mu.Lock()
	c.readLast = true
	c.w.mu.Unlock()
	return n, err
}

// openCounted opens a store of one connection whose traffic w counts.
func openCounted(t *testing.T) (*Store, *wire) {
	t.Helper()
	url, _, schema := testDB(t)
	w := &wire{}
	var d net.Dialer
	s, err := Open(context.Background(), url, &Options{Schema: schema, MaxConns: 1,
		dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countedConn{Conn: conn, w: w}, nil
		}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, w
}

// TestRoundTrips counts the statements and round trips of each call once
// its statements are prepared (the first call of each pays one more round
// trip to prepare it): a transition is one statement in one round trip.
func TestRoundTrips(t *testing.T) {
	ctx := context.Background()
	s, w := openCounted(t)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	newTasks := func(n int) []*persist.Task {
		out := make([]*persist.Task, n)
		for i := range out {
			out[i] = &persist.Task{ID: persist.NewID(), Method: "post", Params: map[string]string{"k": "v"}, Created: at, NextAt: at}
		}
		return out
	}
	warm := newTasks(2)
	tasks := newTasks(50)
	step := func(task *persist.Task, ev transitions.Event, to states.State) error {
		rec := &persist.Record{From: task.State, Event: ev, To: to}
		task.State = to
		task.NextAt = task.NextAt.Add(time.Second)
		return s.Apply(ctx, task, rec)
	}
	calls := []struct {
		name                   string
		call                   func(i int) error
		roundTrips, statements int
	}{
		{"Create (50 tasks)", func(i int) error {
			if i == 0 {
				return s.Create(ctx, warm...)
			}
			return s.Create(ctx, tasks...)
		}, 1, 50}, // one statement per task: its row, params and first record
		{"Apply", func(i int) error {
			if i == 0 {
				return step(warm[0], transitions.SubmitSending, states.Submitting)
			}
			return step(tasks[0], transitions.SubmitSending, states.Submitting)
		}, 1, 1},
		{"Apply (to another state)", func(i int) error {
			return step(tasks[i], transitions.SubmitAccepted, states.Polling)
		}, 1, 1},
		{"Get", func(i int) error { _, err := s.Get(ctx, tasks[i].ID); return err }, 1, 1},
		{"History", func(i int) error { _, err := s.History(ctx, tasks[i].ID); return err }, 1, 1},
		{"Due (a window of 10)", func(int) error {
			_, err := s.Due(ctx, persist.DueOptions{Until: at.Add(time.Hour), Limit: 10})
			return err
		}, 1, 1},
		{"LastSubmit", func(int) error { _, err := s.LastSubmit(ctx); return err }, 1, 1},
		{"List (one page)", func(int) error { _, err := s.List(ctx, persist.ListOptions{Limit: 20}); return err }, 1, 1},
		{"Claim", func(int) error { _, err := s.Claim(ctx, "engine-a", 5, time.Minute); return err }, 1, 1},
	}
	for _, c := range calls {
		require.NoError(t, c.call(0), c.name) // prepares the statements
		w.reset()
		require.NoError(t, c.call(1), c.name)
		rt, st := w.counts()
		assert.Equal(t, c.roundTrips, rt, "%s: round trips", c.name)
		assert.Equal(t, c.statements, st, "%s: statements", c.name)
	}
}
