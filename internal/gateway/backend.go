package gateway

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider/protocol"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// backend is the gateway as a protocol.Backend: the protocol parses,
// checks and renders; the engine keeps and drives the tasks.
type backend struct{ g *Gateway }

var _ protocol.Backend = backend{}

// refTries bounds the ids tried for one task when an id's ref is taken
// (by an earlier run, with the clock set back).
const refTries = 8

// Admit lets every request through: the gateway answers from memory, and
// the engine paces what goes upstream.
func (b backend) Admit(context.Context, *protocol.Request) error { return nil }

// Authenticate names the client whose key the request carries.
func (b backend) Authenticate(_ context.Context, r *protocol.Request) (string, error) {
	name, ok := b.g.authenticate(r.Key)
	if !ok {
		return "", protocol.Errorf("ERROR_KEY_DOES_NOT_EXIST", "this gateway has no client with this key")
	}
	return name, nil
}

// Submit records the task durably (the engine's Submit) before answering
// its id; a lost answer's retry gets the same id (see dedup).
func (b backend) Submit(ctx context.Context, r *protocol.Request, t protocol.Task) (int64, error) {
	g := b.g
	pingback := ""
	if t.Pingback != "" {
		u, e := g.pings.check(t.Pingback)
		if e != nil {
			return 0, e
		}
		pingback = u
	}
	dl := deliveryOf(ctx)
	var a *attempt
	if dl != nil {
		var claimed bool
		a, claimed = g.dedup.begin(ctx, dedupKey{r.Client, t.Fingerprint()})
		if claimed {
			dl.a = a
			g.obs.Deduplicated(r.Client)
			g.log.Info("in.php retry answered with its first id", "client", r.Client, "id", a.id)
			return a.id, nil
		}
		dl.a = a
		if a == nil && ctx.Err() != nil {
			// The client gave up while its first try was being answered:
			// nothing is created for an answer no one will read.
			return 0, protocol.Errorf(protocol.CodeInternal, "the request was cancelled")
		}
	}
	// The task is created whatever becomes of the client's connection, so
	// that a retry of a lost answer finds it: the request's cancellation
	// does not reach the store.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.opTimout)
	defer cancel()
	// Each id is a new task: a ref an earlier run left is never attached to.
	req := engine.Request{Method: t.Method, Params: normalize(t.Params), IfRefExists: engine.RefUnique}
	if pingback != "" {
		// Kept with the task, so that a task accepted before a restart
		// still gets its pingback.
		req.Labels = map[string]string{LabelPingback: pingback}
	}
	for range refTries {
		id := g.ids.next()
		k := key{r.Client, id}
		req.Ref = Ref(r.Client, id)
		g.view.reserve(k, t.Method, pingback, time.Now())
		sub, err := g.eng.Enqueue(sctx, req)
		switch {
		case err == nil:
			if a != nil {
				g.dedup.created(a, id)
			}
			g.view.update(k, func(e *entry) {
				if e.task == "" { // the engine has not moved it yet
					e.task, e.seq = sub.ID, 1
				}
			})
			return id, nil
		case errors.Is(err, engine.ErrRefExists):
			// The ref is an earlier run's: take the next id.
			g.view.drop(k)
			continue
		}
		g.view.drop(k)
		if e := protocol.ErrorOf(err); e.Code != protocol.CodeInternal {
			return 0, e
		}
		g.log.Error("in.php: the task could not be stored", "client", r.Client, "err", err)
		return 0, protocol.Errorf(protocol.CodeInternal, "the gateway could not store the task; try again")
	}
	return 0, protocol.Errorf(protocol.CodeInternal, "the gateway found no free id")
}

// Results answers action=get from the tasks in memory, reading the store
// only for a task the gateway does not hold (settled long ago, or accepted
// by an earlier run and not moved since).
func (b backend) Results(ctx context.Context, r *protocol.Request, ids []int64) ([]protocol.Result, error) {
	out := make([]protocol.Result, len(ids))
	for i, id := range ids {
		e, ok, err := b.g.lookup(ctx, r.Client, id)
		switch {
		case err != nil:
			return nil, err
		case !ok:
			out[i] = protocol.Result{Code: codeWrongID, Text: "this client has no task with this id"}
		default:
			out[i] = b.g.resultOf(e)
		}
	}
	return out, nil
}

// Cost answers action=get2: the answer and its price (the one the engine
// recorded, else asked of the provider once per task, through the engine's
// budget).
func (b backend) Cost(ctx context.Context, r *protocol.Request, id int64) (protocol.Result, error) {
	g := b.g
	e, ok, err := g.lookup(ctx, r.Client, id)
	if err != nil {
		return protocol.Result{}, err
	}
	if !ok {
		return protocol.Result{Code: codeWrongID, Text: "this client has no task with this id"}, nil
	}
	res := g.resultOf(e)
	if res.Code != "" {
		return res, nil
	}
	price := e.cost
	if price == "" {
		c, err := g.eng.Price(ctx, e.task)
		if err != nil {
			return protocol.Result{}, upstreamErr(err, "get2")
		}
		price = c
		g.view.update(key{r.Client, id}, func(e *entry) { e.cost = c })
	}
	res.Price = price
	return res, nil
}

// Balance answers the provider's balance, reused for BalanceTTL.
func (b backend) Balance(ctx context.Context, _ *protocol.Request) (string, error) {
	v, err := b.g.balance.get(ctx, b.g.eng.Balance)
	if err != nil {
		return "", upstreamErr(err, "getbalance")
	}
	return v, nil
}

// Report sends reportgood/reportbad to the provider for the provider id
// of the task's last submit. A report is made once per task.
func (b backend) Report(ctx context.Context, r *protocol.Request, id int64, good bool) error {
	g := b.g
	e, ok, err := g.lookup(ctx, r.Client, id)
	if err != nil {
		return err
	}
	if !ok {
		return protocol.Errorf(codeWrongID, "this client has no task with this id")
	}
	if e.state != states.Done || e.providerID == "" {
		return protocol.Errorf("ERROR_REPORT_NOT_RECORDED", "the task has no answer to report on")
	}
	k := key{r.Client, id}
	first := true // a task that just left memory was not reported in this run
	g.view.update(k, func(e *entry) {
		first = !e.reported
		e.reported = true
	})
	if !first {
		g.obs.Reported(r.Client, good, "ERROR_DUPLICATE_REPORT")
		return protocol.Errorf("ERROR_DUPLICATE_REPORT", "this task was reported already")
	}
	if err := g.eng.Report(ctx, e.task, good); err != nil {
		ue := upstreamErr(err, "report")
		var pe *protocol.Error
		code := protocol.CodeInternal
		if errors.As(ue, &pe) {
			code = pe.Code
		}
		if code == protocol.CodeInternal {
			g.view.update(k, func(e *entry) { e.reported = false }) // may be tried again
		}
		g.obs.Reported(r.Client, good, code)
		g.log.Warn("report not recorded", "client", r.Client, "id", id, "task", e.task, "provider_id", e.providerID, "good", good, "code", code)
		return ue
	}
	g.obs.Reported(r.Client, good, "OK")
	g.log.Info("report recorded", "client", r.Client, "id", id, "task", e.task, "provider_id", e.providerID, "good", good)
	return nil
}

// AddPingback registers a URL for the client.
func (b backend) AddPingback(_ context.Context, r *protocol.Request, addr string) error {
	return b.g.pings.add(r.Client, addr)
}

// Pingbacks lists the client's URLs.
func (b backend) Pingbacks(_ context.Context, r *protocol.Request) ([]string, error) {
	return b.g.pings.list(r.Client), nil
}

// DeletePingback forgets the client's URL, or all of them.
func (b backend) DeletePingback(_ context.Context, r *protocol.Request, addr string) error {
	b.g.pings.del(r.Client, addr)
	return nil
}

// lookup returns the client's task id: from memory, else from the store
// (which the view then holds).
func (g *Gateway) lookup(ctx context.Context, client string, id int64) (entry, bool, error) {
	k := key{client, id}
	if e, ok := g.view.get(k); ok && e.task != "" {
		return e, true, nil
	}
	t, err := g.eng.Get(ctx, Ref(client, id))
	switch {
	case errors.Is(err, persist.ErrNotFound):
		if e, ok := g.view.get(k); ok {
			return e, true, nil // reserved: being stored right now
		}
		return entry{}, false, nil
	case err != nil:
		g.log.Error("res.php: the store could not be read", "client", client, "id", id, "err", err)
		return entry{}, false, protocol.Errorf(protocol.CodeInternal, "the gateway could not read the task; try again")
	}
	_, e, _ := g.view.put(client, id, t, time.Now())
	return e, true, nil
}

// observe is the engine's hook: it keeps the view current, and when a
// client's task settles, counts it and sends its pingback.
func (g *Gateway) observe(tr engine.Transition) {
	t := tr.Task
	client, id, ok := ParseRef(t.Ref)
	if !ok {
		return
	}
	if e, ok := transitions.Lookup(tr.Record.Code); ok && e.Class == transitions.ClassAccount && tr.Record.To == states.NeedsAccountFix {
		g.account.saw(tr.Record.Code)
	}
	before, after, _ := g.view.put(client, id, &t, time.Now())
	if !t.State.Settled() || before.state == t.State && before.task != "" {
		return
	}
	g.obs.Settled(client, t.State, tr.Record.At.Sub(t.Created))
	if t.State.Terminal() && after.pingback != "" {
		// Checked again: a URL stored by an earlier run may name a host
		// the operator no longer allows.
		u, e := g.pings.check(after.pingback)
		if e != nil {
			g.log.Warn("pingback not sent: its host is no longer allowed", "client", client, "id", id, "err", e.Text)
			return
		}
		res := g.resultOf(after)
		answer := res.Token
		if res.Code != "" {
			answer = res.Code
		}
		g.pings.send(client, id, u, answer)
	}
}

// normalize writes the values the provider takes in more than one
// spelling the one way the engine's validation (provider.Validate) takes
// them, so that what the provider accepts the gateway accepts: the flags
// invisible and enterprise as 0 or 1 (the community `2captcha` client
// sends invisible=false), proxytype in upper case.
func normalize(p map[string]string) map[string]string {
	for _, flag := range []string{"invisible", "enterprise"} {
		switch v, ok := p[flag]; {
		case !ok:
		case strings.EqualFold(v, "true"):
			p[flag] = "1"
		case strings.EqualFold(v, "false"), v == "":
			p[flag] = "0"
		}
	}
	if v, ok := p["proxytype"]; ok {
		p["proxytype"] = strings.ToUpper(v)
	}
	return p
}
