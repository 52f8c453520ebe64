package providersim

import (
	"time"

	"github.com/captchafsm/captchafsm/provider"
)

// The production rate rules are provider's (provider/limits.go), shared
// with the engine; ban lengths come from the catalogue. Windows are in real
// (clock) time; the bans they start are divided by Config.Speed.
var (
	submitBurstBan  = provider.Ban(provider.CodeSubmitBurst)
	pollFloodBan    = provider.Ban(provider.CodePollBudget)
	noSlotFloodBan  = provider.Ban(provider.CodeNoSlotFlood)
	zeroBalFloodBan = provider.Ban(provider.CodeZeroBalanceFlood)
)

// window remembers the last len(times) events (unix nanoseconds) to tell
// whether one more would make len(times)+1 events within span.
type window struct {
	times []int64
	head  int // next write position
	n     int
	span  int64
}

func newWindow(size int, span time.Duration) window {
	return window{times: make([]int64, size), span: int64(span)}
}

func (w *window) oldest() int64 {
	return w.times[(w.head+len(w.times)-w.n)%len(w.times)]
}

// full reports whether the window holds len(times) events, all within span
// of now.
func (w *window) full(now int64) bool {
	return w.n == len(w.times) && now-w.oldest() < w.span
}

func (w *window) add(now int64) {
	w.times[w.head] = now
	w.head = (w.head + 1) % len(w.times)
	if w.n < len(w.times) {
		w.n++
	}
}

func (w *window) reset() { w.n, w.head = 0, 0 }

// hourly counts res.php requests and accepted captchas over the last hour
// in one-minute buckets: constant memory however long the run.
type hourly struct {
	b [60]struct {
		minute         int64
		polls, accepts int
	}
}

func minuteOf(now int64) int64 {
	m := now / int64(time.Minute)
	if now < 0 && now%int64(time.Minute) != 0 {
		m--
	}
	return m
}

func (h *hourly) add(now int64, polls, accepts int) {
	m := minuteOf(now)
	b := &h.b[((m%60)+60)%60]
	if b.minute != m {
		b.minute, b.polls, b.accepts = m, 0, 0
	}
	b.polls += polls
	b.accepts += accepts
}

func (h *hourly) sum(now int64) (polls, accepts int) {
	m := minuteOf(now)
	for i := range h.b {
		if b := h.b[i]; b.minute > m-60 && b.minute <= m {
			polls += b.polls
			accepts += b.accepts
		}
	}
	return polls, accepts
}

func (h *hourly) resetPolls() {
	for i := range h.b {
		h.b[i].polls = 0
	}
}

// ban is an endpoint-wide block.
type ban struct {
	until int64
	code  string
}

func (b ban) active(now int64) bool { return b.code != "" && now < b.until }
