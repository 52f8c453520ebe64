package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider/protocol"
)

// Pingback limits.
const (
	// pingbackTimeout bounds one pingback request.
	pingbackTimeout = 10 * time.Second
	// maxPingbackURLs bounds the URLs one client registers.
	maxPingbackURLs = 64
	// pingbackSenders bounds the pingbacks being sent at once; more wait.
	pingbackSenders = 16
	// maxPingbackLen bounds a pingback URL: a task keeps its URL as its
	// label LabelPingback, within the store's label limits.
	maxPingbackLen = persist.MaxLabelsLen - len(LabelPingback)
)

// pingbacks keeps the URLs clients registered (add_pingback) and sends a
// task's answer to its pingback URL when the task ends: one POST of
// id=ID&code=ANSWER (application/x-www-form-urlencoded), as the provider
// does, one attempt. URLs must name a loopback address or one of the
// allowed hosts: the gateway calls nothing else.
type pingbacks struct {
	allowed map[string]bool // lower-case host names and addresses beyond loopback
	client  *http.Client
	obs     Observer
	log     *slog.Logger

	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	urls   map[string]map[string]bool // client → registered URLs
	closed bool
}

func newPingbacks(hosts []string, client *http.Client, obs Observer, log *slog.Logger) (*pingbacks, error) {
	p := &pingbacks{allowed: map[string]bool{}, client: client, obs: obs, log: log,
		sem: make(chan struct{}, pingbackSenders), urls: map[string]map[string]bool{}}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, "/:@ ") && net.ParseIP(h) == nil {
			return nil, fmt.Errorf("%w: PingbackHosts: %.70q is not a host name or address", ErrConfig, h)
		}
		p.allowed[h] = true
	}
	if p.client == nil {
		p.client = &http.Client{
			Timeout: pingbackTimeout,
			// A redirect could lead anywhere: the gateway calls allowed
			// hosts only.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// check returns the URL as the gateway will call it, or the reason it is
// refused.
func (p *pingbacks) check(raw string) (string, *protocol.Error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", protocol.Errorf("ERROR_BAD_PARAMETERS", "the pingback URL must be an absolute http(s) URL without credentials")
	}
	host := strings.ToLower(u.Hostname())
	if !p.allowed[host] && !loopbackHost(host) {
		return "", protocol.Errorf("ERROR_IP_ADDRES",
			"the gateway calls pingback URLs on loopback addresses and the hosts its operator allows (--pingback-allow) only; %.70s is not one", host)
	}
	u.Fragment = ""
	s := u.String()
	if len(s) > maxPingbackLen || !utf8.ValidString(s) {
		// Kept with the task as a label, which the store refuses: say so
		// now, not "try again" once the store has refused it.
		return "", protocol.Errorf("ERROR_BAD_PARAMETERS",
			"the pingback URL must be at most %d bytes of UTF-8 (percent-encode other bytes)", maxPingbackLen)
	}
	return s, nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// add registers a URL for client.
func (p *pingbacks) add(client, raw string) error {
	u, e := p.check(raw)
	if e != nil {
		return e
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	set := p.urls[client]
	if set == nil {
		set = map[string]bool{}
		p.urls[client] = set
	}
	if !set[u] && len(set) >= maxPingbackURLs {
		return protocol.Errorf("ERROR_BAD_PARAMETERS", "at most %d pingback URLs", maxPingbackURLs)
	}
	set[u] = true
	return nil
}

// list returns client's registered URLs.
func (p *pingbacks) list(client string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.urls[client]))
	for u := range p.urls[client] {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// del forgets a URL of client, or every one for "all".
func (p *pingbacks) del(client, raw string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if raw == "all" {
		delete(p.urls, client)
		return
	}
	if u, e := p.check(raw); e == nil {
		delete(p.urls[client], u)
	}
}

// send POSTs id and answer to addr in the background.
func (p *pingbacks) send(client string, id int64, addr, answer string) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		select {
		case p.sem <- struct{}{}:
		case <-p.ctx.Done():
			return
		}
		defer func() { <-p.sem }()
		ok := p.post(addr, url.Values{"id": {strconv.FormatInt(id, 10)}, "code": {answer}})
		p.obs.Pingback(client, ok)
		if !ok {
			p.log.Warn("pingback not delivered", "client", client, "id", id)
		}
	}()
}

func (p *pingbacks) post(addr string, form url.Values) bool {
	ctx, cancel := context.WithTimeout(p.ctx, pingbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr, strings.NewReader(form.Encode()))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode <= 299
}

// close cancels the pingbacks being sent and waits for them.
func (p *pingbacks) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}
