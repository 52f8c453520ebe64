package fsm

import (
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/transitions"
)

// Apply returns the next version of cur and the record of its move by d:
// the one place where a decision of the table becomes data. The move is
// checked by the machine (Step): an illegal one is an *IllegalError and
// nothing is built. cur is not changed. The store assigns the record's
// sequence when it commits.
func Apply(cur *persist.Task, d transitions.Decision) (*persist.Task, *persist.Record, error) {
	from := cur.State
	to, err := Step(from, d.Event)
	if err != nil {
		return nil, nil, err
	}
	next := cur.Clone()
	next.State, next.Code, next.Updated = to, d.Code, d.At
	if !d.KeepNext {
		next.NextAt = d.Next
	}
	switch d.Change {
	case transitions.CountSubmit:
		next.Submits++
	case transitions.CountRetry:
		next.Retries++
	case transitions.CountResubmit:
		next.Resubmits++
	case transitions.StartPolling:
		next.ProviderID, next.PollSince = d.ProviderID, d.At
	case transitions.NewProviderTask:
		next.ProviderID, next.Token = "", ""
	case transitions.TakeToken:
		next.Token, next.Cost = d.Token, d.Cost
	}
	if d.Polled {
		next.Polls++
	}
	if d.TimeoutShift > 0 && !next.PollSince.IsZero() {
		next.PollSince = next.PollSince.Add(d.TimeoutShift)
	}
	rec := &persist.Record{At: d.At, From: from, Event: d.Event, To: to, Code: d.Code, Detail: d.Detail,
		ProviderID: next.ProviderID, PossiblyCharged: d.Charged}
	return next, rec, nil
}
