package providersim

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/protocol"
)

// defaultSlowDelay outlasts the default request timeout (30 s).
const defaultSlowDelay = 35 * time.Second

// reply is a decided HTTP answer, shared by ServeHTTP and the in-process
// transport.
type reply struct {
	status int
	header http.Header
	body   []byte
	fault  Fault // FaultDrop or FaultSlow: the answer is lost or held back
	delay  time.Duration
}

const html502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

// handle decides the answer to r: the protocol parses it, the simulator
// counts it and draws its fault, the protocol serves it through the
// simulator's backend. It reads (and drains) r's body; it never blocks on
// time.
func (s *Sim) handle(r *http.Request) reply {
	req, pre := s.proto.Parse(r)
	drain(r.Body)
	if pre != nil {
		return reply{status: pre.Status, header: pre.Header, body: pre.Body}
	}
	kind, faultKind, ids := kindOf(req)

	s.mu.Lock()
	s.requests[kind]++
	if ids > 0 {
		s.requests[KindPollIDs] += ids
	}
	rates := s.faultRates(faultKind)
	fault := Fault("")
	if rates.any() {
		fault = drawFault(rates, s.faultRNG.Float64())
	}
	if fault != "" {
		s.faultN[FaultKey{Kind: faultKind, Fault: fault}]++
	}
	s.mu.Unlock()
	switch fault {
	case FaultHTTP500:
		return reply{status: http.StatusInternalServerError, header: textHeader(), body: []byte("Internal Server Error\n")}
	case FaultHTML502:
		return reply{status: http.StatusBadGateway, header: http.Header{"Content-Type": {"text/html"}}, body: []byte(html502)}
	}

	out := s.proto.Serve(r.Context(), req)
	s.mu.Lock()
	for _, c := range out.Codes {
		s.answers[c]++
	}
	if len(out.Codes) == 1 {
		s.noteBadKey(s.now().UnixNano(), req.Addr, out.Codes[0])
	}
	s.mu.Unlock()

	rep := reply{status: out.Status, header: out.Header, body: out.Body, fault: fault}
	if fault == FaultSlow {
		rep.delay = rates.SlowDelay
		if rep.delay == 0 {
			rep.delay = defaultSlowDelay
		}
	}
	return rep
}

func textHeader() http.Header { return http.Header{"Content-Type": {"text/plain; charset=utf-8"}} }

// kindOf is how the ledger counts a request, how its faults are drawn, and
// how many ids it polls.
func kindOf(req *protocol.Request) (kind, faultKind Kind, ids int) {
	if req.Endpoint == protocol.EndpointIn {
		return KindSubmit, KindSubmit, 0
	}
	switch req.Action {
	case "get":
		ids = 1
		if v := req.Form.Get("ids"); v != "" {
			ids = strings.Count(v, ",") + 1
		}
		return KindPoll, KindPoll, ids
	case "get2":
		return KindGet2, KindPoll, 0
	case "getbalance":
		return KindBalance, KindBalance, 0
	case "reportgood", "reportbad":
		return KindReport, KindReport, 0
	case "add_pingback", "get_pingback", "del_pingback":
		return KindPingback, KindPoll, 0
	}
	return KindOther, KindPoll, 0
}

func (s *Sim) faultRates(k Kind) FaultRates {
	switch k {
	case KindSubmit:
		return s.faults.Submit
	case KindBalance:
		return s.faults.Balance
	case KindReport:
		return s.faults.Report
	}
	return s.faults.Poll
}

func drawFault(f FaultRates, r float64) Fault {
	for _, c := range []struct {
		p     float64
		fault Fault
	}{{f.HTTP500, FaultHTTP500}, {f.HTML502, FaultHTML502}, {f.Drop, FaultDrop}, {f.Slow, FaultSlow}} {
		if r < c.p {
			return c.fault
		}
		r -= c.p
	}
	return ""
}

func drain(b io.ReadCloser) {
	if b != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(b, protocol.DefaultMaxBody))
	}
}

// noteBadKey counts an answer to a wrong or unknown key from addr, and bans
// the address once it has earned it (provider.BadKeyFlood within
// provider.BadKeyWindow). Called with s.mu held.
func (s *Sim) noteBadKey(now int64, addr, code string) {
	if !s.rules || (code != "ERROR_WRONG_USER_KEY" && code != "ERROR_KEY_DOES_NOT_EXIST") {
		return
	}
	w, ok := s.badKeys[addr]
	if !ok {
		if len(s.badKeys) >= maxTracked {
			clear(s.badKeys) // a flood of addresses: forget, never grow without bound
		}
		nw := newWindow(provider.BadKeyFlood, provider.BadKeyWindow)
		w = &nw
		s.badKeys[addr] = w
	}
	w.add(now)
	if w.n == len(w.times) && now-w.oldest() < w.span {
		delete(s.badKeys, addr)
		if len(s.ipBans) >= maxTracked {
			clear(s.ipBans)
		}
		b := ban{}
		s.startBan(&b, now, provider.CodeBadKeyBan, provider.Ban(provider.CodeBadKeyBan))
		s.ipBans[addr] = b
	}
}

// maxTracked bounds the addresses whose bad keys and bans are remembered.
const maxTracked = 4096
