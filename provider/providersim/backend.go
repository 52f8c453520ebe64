package providersim

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/protocol"
)

// backend is the simulator as a protocol.Backend: the protocol parses,
// checks and renders; the simulator decides. Every method takes the Sim's
// lock for its own decision.
type backend struct{ s *Sim }

var _ protocol.Backend = backend{}

func codeErr(code string) error { return &protocol.Error{Code: code} }

// maxPingbacks bounds the registered pingback URLs.
const maxPingbacks = 64

// Admit applies the bans and rate windows every request passes through,
// before its key is known: the IP ban of repeated wrong keys, the
// endpoint's own ban, the in.php burst window and the res.php budget.
func (b backend) Admit(_ context.Context, r *protocol.Request) error {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixNano()
	if ib, ok := s.ipBans[r.Addr]; ok && ib.active(now) {
		return &protocol.Error{Code: ib.code, Text: "this IP sent too many requests with a wrong key; wait for the ban to end"}
	}
	if r.Endpoint == protocol.EndpointIn {
		if s.submitBan.active(now) {
			return codeErr(s.submitBan.code)
		}
		if s.rules {
			if s.submitWin.full(now) {
				s.submitWin.reset()
				s.startBan(&s.submitBan, now, provider.CodeSubmitBurst, submitBurstBan)
				return &protocol.Error{Code: provider.CodeSubmitBurst,
					Text: fmt.Sprintf("more than %d in.php requests in %s", provider.SubmitBurst, provider.SubmitBurstWindow)}
			}
			s.submitWin.add(now)
		}
		return nil
	}
	if s.resultBan.active(now) {
		return codeErr(s.resultBan.code)
	}
	if s.rules {
		s.hour.add(now, 1, 0)
		polls, accepts := s.hour.sum(now)
		if polls > provider.PollBudget(accepts) {
			s.hour.resetPolls()
			s.startBan(&s.resultBan, now, provider.CodePollBudget, pollFloodBan)
			return &protocol.Error{Code: provider.CodePollBudget,
				Text: fmt.Sprintf("more than %d res.php requests in the last hour (20 per captcha + 1200)", provider.PollBudget(accepts))}
		}
	}
	return nil
}

// Authenticate accepts any well-formed key, or only Config.Key and
// Config.Keys when given (compared in constant time, in any letter case).
func (b backend) Authenticate(_ context.Context, r *protocol.Request) (string, error) {
	s := b.s
	if len(s.keys) == 0 {
		return "", nil
	}
	k := []byte(strings.ToLower(r.Key))
	found := 0
	for _, valid := range s.keys {
		found |= subtle.ConstantTimeCompare(k, valid)
	}
	if found != 1 {
		return "", &protocol.Error{Code: "ERROR_KEY_DOES_NOT_EXIST", Text: "no account has this key"}
	}
	return "", nil
}

// Submit accepts a checked task: the error mix, the pingback's
// registration and the balance decide.
func (b backend) Submit(_ context.Context, _ *protocol.Request, t protocol.Task) (int64, error) {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixNano()
	// One draw per submit that reaches this point, whatever follows, so the
	// sequence of draws depends only on the sequence of requests.
	mixCode := draw(s.submitMix, s.submitRNG.Float64())
	mi, ok := s.method(t.Method)
	if !ok {
		return 0, &protocol.Error{Code: "ERROR_BAD_PARAMETERS", Text: "the simulator knows too many methods already"}
	}
	if t.Pingback != "" && !s.pingbackAllowed(t.Pingback) {
		return 0, &protocol.Error{Code: "ERROR_IP_ADDRES", Text: "register the pingback URL first (res.php?action=add_pingback&addr=URL)"}
	}
	fp := Fingerprint(t.Fingerprint())
	p := s.prints[fp]
	p.Requests++
	s.prints[fp] = p

	if mixCode != "" {
		return 0, s.flood(now, mixCode)
	}
	m := &s.methods[mi]
	if s.balance < m.cost || s.balance <= 0 {
		return 0, s.flood(now, "ERROR_ZERO_BALANCE")
	}
	var flags uint8
	if t.Method == "geetest" && t.Params["version"] == "4" {
		flags |= flagGeetestV4
	}
	return s.accept(now, mi, fp, flags, t.Pingback), nil
}

// Results answers action=get, with the poll timing rules.
func (b backend) Results(_ context.Context, _ *protocol.Request, ids []int64) ([]protocol.Result, error) {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixNano()
	out := make([]protocol.Result, len(ids))
	for i, id := range ids {
		out[i] = s.poll(now, id, true)
	}
	return out, nil
}

// Cost answers action=get2: the task's answer and price.
func (b backend) Cost(_ context.Context, _ *protocol.Request, id int64) (protocol.Result, error) {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.poll(s.now().UnixNano(), id, false)
	if res.Code == "" {
		res.Price = formatMoney(s.tasks[id-firstID].cost)
	}
	return res, nil
}

// Balance answers action=getbalance.
func (b backend) Balance(context.Context, *protocol.Request) (string, error) {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return formatMoney(s.balance), nil
}

// Report records reportgood / reportbad.
func (b backend) Report(_ context.Context, _ *protocol.Request, id int64, good bool) error {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if code := s.report(s.now().UnixNano(), id, good); code != "OK_REPORT_RECORDED" {
		return codeErr(code)
	}
	return nil
}

// AddPingback registers a loopback URL: the simulator never calls out of
// the machine.
func (b backend) AddPingback(_ context.Context, _ *protocol.Request, addr string) error {
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !loopbackHost(u.Hostname()) {
		return &protocol.Error{Code: "ERROR_BAD_PARAMETERS", Text: "addr must be an http(s) URL on a loopback address: the simulator calls nothing else"}
	}
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pingbacks[u.String()] && len(s.pingbacks) >= maxPingbacks {
		return &protocol.Error{Code: "ERROR_BAD_PARAMETERS", Text: fmt.Sprintf("at most %d pingback URLs", maxPingbacks)}
	}
	s.pingbacks[u.String()] = true
	return nil
}

// Pingbacks lists the registered URLs.
func (b backend) Pingbacks(context.Context, *protocol.Request) ([]string, error) {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedKeys(s.pingbacks), nil
}

// DeletePingback forgets a URL, or every one for "all".
func (b backend) DeletePingback(_ context.Context, _ *protocol.Request, addr string) error {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if addr == "all" {
		clear(s.pingbacks)
		return nil
	}
	if u, err := url.Parse(addr); err == nil {
		delete(s.pingbacks, u.String())
	}
	return nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// pingbackAllowed reports whether a task's pingback URL is on a registered
// address (same scheme, host and port). Called with s.mu held.
func (s *Sim) pingbackAllowed(addr string) bool {
	u, err := url.Parse(addr)
	if err != nil || !loopbackHost(u.Hostname()) {
		return false
	}
	for reg := range s.pingbacks {
		if r, err := url.Parse(reg); err == nil && r.Scheme == u.Scheme && r.Host == u.Host {
			return true
		}
	}
	return false
}

// flood answers code, and starts the ban a flood of it earns.
func (s *Sim) flood(now int64, code string) error {
	var w *window
	var banCode string
	var d time.Duration
	switch code {
	case "ERROR_NO_SLOT_AVAILABLE":
		w, banCode, d = &s.noSlotWin, provider.CodeNoSlotFlood, noSlotFloodBan
	case "ERROR_ZERO_BALANCE":
		w, banCode, d = &s.zeroBalWin, provider.CodeZeroBalanceFlood, zeroBalFloodBan
	}
	if w != nil && s.rules {
		w.add(now)
		if w.n == len(w.times) && now-w.oldest() < w.span {
			w.reset()
			s.startBan(&s.submitBan, now, banCode, d)
		}
	}
	return codeErr(code)
}

func (s *Sim) accept(now int64, mi uint16, fp Fingerprint, flags uint8, pingback string) int64 {
	m := &s.methods[mi]
	solve := m.dist.Min
	if span := int64(m.dist.Max - m.dist.Min); span > 0 {
		solve += time.Duration(s.taskRNG.Int64N(span + 1))
	}
	outcome := s.outcomeIndex(draw(s.pollMix, s.taskRNG.Float64()))
	s.balance -= m.cost
	s.charged += m.cost
	id := firstID + int64(len(s.tasks))
	ready := now + int64(s.scale(solve))
	s.tasks = append(s.tasks, task{
		accepted: now,
		ready:    ready,
		fp:       fp,
		cost:     m.cost,
		method:   mi,
		outcome:  outcome,
		flags:    flags,
	})
	p := s.prints[fp]
	p.Accepted++
	s.prints[fp] = p
	s.hour.add(now, 0, 1)
	if pingback != "" {
		s.schedulePingback(id, pingback, time.Duration(ready-now))
	}
	return id
}

// lookup returns the task of a provider id, or the code to answer.
func (s *Sim) lookup(id int64) (*task, string) {
	i := id - firstID
	if i < 0 || i >= int64(len(s.tasks)) {
		return nil, "ERROR_WRONG_CAPTCHA_ID"
	}
	return &s.tasks[i], ""
}

// poll answers one id of action=get (timed: the poll timing rules apply)
// or get2. Called with s.mu held.
func (s *Sim) poll(now, id int64, timed bool) protocol.Result {
	t, code := s.lookup(id)
	if code != "" {
		return protocol.Result{Code: code}
	}
	t.polls++
	if timed && s.timing {
		since, least, what := now-t.accepted, s.scale(provider.FirstPoll(s.methods[t.method].name)), "its submit"
		if t.lastPoll != 0 {
			since, least, what = now-t.lastPoll, s.scale(provider.PollIntervalMin), "its last poll"
		}
		if since < int64(least) {
			s.tooSoon++
			return protocol.Result{Code: provider.CodePollTooSoon, Text: fmt.Sprintf(
				"task %d polled %s after %s; the provider's docs ask for at least %s", id,
				time.Duration(since).Round(time.Millisecond), what, least)}
		}
		t.lastPoll = now
	}
	switch {
	case now < t.ready:
		return protocol.Result{Code: "CAPCHA_NOT_READY"}
	case t.outcome != 0:
		return protocol.Result{Code: s.codes[t.outcome]}
	case s.tokenTTL > 0 && now >= t.ready+s.tokenTTL:
		return protocol.Result{Code: "ERROR_TOKEN_EXPIRED"}
	}
	return s.answer(id, s.methods[t.method].name, t.flags)
}

func (s *Sim) report(now, id int64, good bool) string {
	t, code := s.lookup(id)
	if code != "" {
		return code
	}
	if t.report != reportNone {
		return "ERROR_DUPLICATE_REPORT"
	}
	if now < t.ready || t.outcome != 0 {
		return "ERROR_REPORT_NOT_RECORDED"
	}
	t.report = reportBad
	if good {
		t.report = reportGood
	}
	return "OK_REPORT_RECORDED"
}

func formatID(id int64) string { return strconv.FormatInt(id, 10) }
