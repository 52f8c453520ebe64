package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/protocol"
	"github.com/captchafsm/captchafsm/transitions"
)

// balanceCache asks the provider for the balance at most once per ttl,
// however many clients ask: every getbalance counts against the provider's
// res.php budget, which the engine's polls need. Callers arriving while a
// request is out wait for it. A failure is kept for a second, so that a
// storm of clients does not turn into a storm of failing requests.
type balanceCache struct {
	ttl time.Duration

	mu       sync.Mutex
	value    string
	err      error
	until    time.Time
	inflight chan struct{}
}

// errKeep is how long a failed balance request is answered from memory.
const errKeep = time.Second

func (c *balanceCache) get(ctx context.Context, fetch func(context.Context) (string, error)) (string, error) {
	for {
		c.mu.Lock()
		if time.Now().Before(c.until) {
			v, err := c.value, c.err
			c.mu.Unlock()
			return v, err
		}
		if ch := c.inflight; ch != nil {
			c.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		ch := make(chan struct{})
		c.inflight = ch
		c.mu.Unlock()

		v, err := fetch(ctx)
		c.mu.Lock()
		c.value, c.err, c.inflight = v, err, nil
		keep := c.ttl
		if err != nil {
			keep = errKeep
		}
		c.until = time.Now().Add(keep)
		c.mu.Unlock()
		close(ch)
		return v, err
	}
}

// upstreamErr is the answer for an error of an upstream request made for a
// client: the provider's code when it is one a client should see (a ban,
// an empty account, a report's own codes), otherwise
// ERROR_INTERNAL_SERVER_ERROR — never the provider's text, which may
// describe the gateway's own key.
func upstreamErr(err error, what string) error {
	switch {
	case errors.Is(err, engine.ErrBudgetSpent):
		return protocol.Errorf("ERROR_TOO_MUCH_REQUESTS", "%s: the gateway keeps its requests under the provider's hourly budget; try again in a minute", what)
	case errors.Is(err, engine.ErrReported):
		return protocol.Errorf("ERROR_DUPLICATE_REPORT", "%s: this task was reported already", what)
	case errors.Is(err, engine.ErrNotReportable):
		return protocol.Errorf("ERROR_REPORT_NOT_RECORDED", "%s: the task has no answer to report on", what)
	}
	var ae *provider.APIError
	if errors.As(err, &ae) {
		switch ae.Code {
		case "ERROR_WRONG_USER_KEY", "ERROR_KEY_DOES_NOT_EXIST":
			return protocol.Errorf(protocol.CodeInternal, "%s: the provider refused the gateway's own key: its operator must fix it", what)
		}
		if e, ok := transitions.Lookup(ae.Code); ok && e.Where != transitions.Engine {
			return protocol.Errorf(ae.Code, "%s: the provider answered %s", what, ae.Code)
		}
	}
	return protocol.Errorf(protocol.CodeInternal, "%s: the provider could not be asked; try again", what)
}
