package gateway

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// RefPrefix starts the engine ref of every task the gateway accepts:
// "gw:<client name>:<numeric id>". The ref is how a restarted gateway finds
// a task from the id a client polls, and how the dashboard shows the
// task's client.
const RefPrefix = "gw:"

// LabelPingback is the label (engine.Request.Labels) that keeps a task's
// pingback URL with it, so that a task accepted before a restart gets its
// pingback from the next run.
const LabelPingback = "gateway.pingback"

// Ref returns the engine ref of client's task id.
func Ref(client string, id int64) string {
	return RefPrefix + client + ":" + strconv.FormatInt(id, 10)
}

// ParseRef reads a ref written by Ref; ok is false for any other ref.
func ParseRef(ref string) (client string, id int64, ok bool) {
	rest, found := strings.CutPrefix(ref, RefPrefix)
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 {
		return "", 0, false
	}
	client = rest[:i]
	id, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil || id <= 0 || !nameRE.MatchString(client) {
		return "", 0, false
	}
	return client, id, true
}

// MaxID is the largest id a JavaScript client parses exactly (2^53).
const MaxID = 1 << 53

// idSeq hands out task ids: max(last+1, the clock in microseconds). The
// clock keeps them above every id of an earlier run (a restart takes far
// longer than the ids can run ahead of the clock: one per committed task),
// and they stay below 2^53 until the year 2255. When the clock goes back,
// last+1 keeps ids rising within a run, and the store's unique refs catch a
// collision with an earlier run (Submit takes the next id).
type idSeq struct {
	mu   sync.Mutex
	last int64
}

func (s *idSeq) next() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = max(s.last+1, time.Now().UnixMicro())
	return s.last
}

// above makes every later id greater than id.
func (s *idSeq) above(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = max(s.last, id)
}
