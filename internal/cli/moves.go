package cli

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
)

// moves shows one task's transitions on a terminal as they happen, for
// solve, which is otherwise silent for the 20-40 s of a token solve: one
// line per move, a repeated move (a not-ready poll) redrawn in place with
// its count. The engine's hook only queues; a goroutine writes. The task's
// id is known only once Submit returns, and its first moves may come
// before: they wait in the queue until then.
type moves struct {
	w     io.Writer
	start time.Time

	mu     sync.Mutex
	id     string // "" until Submit returns
	ref    string
	method string
	queue  []persist.Record
	ids    []string // the task of each queued record
	notify chan struct{}
	stop   chan struct{}
	done   chan struct{}

	// The line being drawn (not yet ended with a newline) and its count.
	last  string
	count int
	pid   string // the provider id shown last
}

func newMoves(w io.Writer) *moves {
	m := &moves{w: w, start: time.Now(), notify: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go m.loop()
	return m
}

// hook is (part of) the engine's OnTransition.
func (m *moves) hook(tr engine.Transition) {
	m.mu.Lock()
	if m.id != "" && tr.Task.ID != m.id {
		m.mu.Unlock()
		return
	}
	m.queue = append(m.queue, tr.Record)
	m.ids = append(m.ids, tr.Task.ID)
	m.mu.Unlock()
	m.wake()
}

func (m *moves) wake() {
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// follow names the task to show, once Submit returned its id. A nil m
// shows nothing.
func (m *moves) follow(id string, req engine.Request) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.id, m.ref, m.method = id, req.Ref, req.Method
	m.mu.Unlock()
	m.wake()
}

func (m *moves) loop() {
	defer close(m.done)
	header := false
	for {
		select {
		case <-m.notify:
		case <-m.stop:
		}
		m.mu.Lock()
		id := m.id
		var recs []persist.Record
		if id != "" {
			for i, r := range m.queue {
				if m.ids[i] == id {
					recs = append(recs, r)
				}
			}
			m.queue, m.ids = nil, nil
		}
		ref, method := m.ref, m.method
		m.mu.Unlock()
		if id != "" && !header {
			header = true
			name := printable(id)
			if ref != "" {
				name += " (ref " + printable(ref) + ")"
			}
			fmt.Fprintf(m.w, "captchafsm: task %s: %s, recorded\n", name, printable(method))
		}
		for _, r := range recs {
			m.draw(r)
		}
		select {
		case <-m.stop:
			if m.last != "" {
				fmt.Fprintln(m.w)
			}
			return
		default:
		}
	}
}

// draw shows one move: a new line, or the current one again with its
// count when the move repeats it.
func (m *moves) draw(r persist.Record) {
	line := fmt.Sprintf("%s → %s  %s", printable(string(r.From)), printable(string(r.To)), printable(string(r.Event)))
	if r.Code != "" {
		line += "  " + printable(r.Code)
	}
	if r.ProviderID != "" && r.ProviderID != m.pid {
		m.pid = r.ProviderID
		line += "  provider id " + printable(r.ProviderID)
	}
	if r.PossiblyCharged {
		line += "  (possibly charged)"
	}
	at := fmt.Sprintf("  %7s  ", "+"+r.At.Sub(m.start).Round(100*time.Millisecond).String())
	if line == m.last {
		m.count++
		fmt.Fprintf(m.w, "\r\033[K%s%s  ×%d", at, line, m.count)
		return
	}
	if m.last != "" {
		fmt.Fprintln(m.w)
	}
	m.last, m.count = line, 1
	fmt.Fprint(m.w, at+line)
}

// end shows what is queued and ends the last line; the engine must be
// closed first (every hook has run).
func (m *moves) end() {
	if m == nil {
		return
	}
	close(m.stop)
	<-m.done
}
