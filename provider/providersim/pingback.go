package providersim

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// pingbackTimeout bounds one pingback request.
const pingbackTimeout = 10 * time.Second

func defaultPingbackClient() *http.Client {
	return &http.Client{
		Timeout: pingbackTimeout,
		// The simulator calls registered loopback URLs only; a redirect
		// could lead anywhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// schedulePingback arranges the POST of task id's answer to addr when the
// task ends, d from now. Called with s.mu held.
func (s *Sim) schedulePingback(id int64, addr string, d time.Duration) {
	if s.closed {
		return
	}
	s.pingWG.Add(1)
	s.pingTimers[id] = time.AfterFunc(max(d, 0), func() {
		defer s.pingWG.Done()
		s.sendPingback(id, addr)
	})
}

// sendPingback POSTs id=ID&code=ANSWER (application/x-www-form-urlencoded)
// to addr, as the provider does: the token, or the task's final code.
func (s *Sim) sendPingback(id int64, addr string) {
	s.mu.Lock()
	delete(s.pingTimers, id)
	if s.closed {
		s.mu.Unlock()
		return
	}
	t := &s.tasks[id-firstID]
	code := s.codes[t.outcome]
	if code == "" {
		code = s.answer(id, s.methods[t.method].name, t.flags).Token
	}
	ctx := s.pingCtx
	s.mu.Unlock()

	ok := s.post(ctx, addr, url.Values{"id": {formatID(id)}, "code": {code}})
	s.mu.Lock()
	if ok {
		s.pingSent++
	} else {
		s.pingFailed++
	}
	s.mu.Unlock()
}

func (s *Sim) post(ctx context.Context, addr string, form url.Values) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr, strings.NewReader(form.Encode()))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.pingClient.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode <= 299
}

// Close stops the simulator's pingbacks: those not yet due are dropped,
// those being sent are cancelled, and Close returns when none is left
// running. Requests are still answered. A Sim whose tasks carry no
// pingback holds no timers and needs no Close.
func (s *Sim) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for id, t := range s.pingTimers {
		if t.Stop() {
			s.pingWG.Done()
		}
		delete(s.pingTimers, id)
	}
	s.mu.Unlock()
	s.pingCancel()
	s.pingWG.Wait()
}
