package engine

import (
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
)

// TaskView is a task as people and scripts see it: the shape of
// `captchafsm list --json`, `history --json` and the dashboard's JSON API.
// Every field is always present except Params, which only a single task's
// view carries, redacted (provider.RedactParams).
type TaskView struct {
	ID         string            `json:"id"`
	Ref        string            `json:"ref"`
	Method     string            `json:"method"`
	State      states.State      `json:"state"`
	Code       string            `json:"code"`
	Submits    int               `json:"submits"`
	Retries    int               `json:"retries"`
	Resubmits  int               `json:"resubmits"`
	Polls      int               `json:"polls"`
	ProviderID string            `json:"provider_id"`
	Token      string            `json:"token"`
	Cost       string            `json:"cost"`
	Created    time.Time         `json:"created"`
	Updated    time.Time         `json:"updated"`
	Params     map[string]string `json:"params,omitempty"`
}

// ViewOf returns t's view, its Params (when loaded) redacted.
func ViewOf(t *persist.Task) TaskView {
	return TaskView{ID: t.ID, Ref: t.Ref, Method: t.Method, State: t.State, Code: t.Code,
		Submits: t.Submits, Retries: t.Retries, Resubmits: t.Resubmits, Polls: t.Polls,
		ProviderID: t.ProviderID, Token: t.Token, Cost: t.Cost, Created: t.Created, Updated: t.Updated,
		Params: provider.RedactParams(t.Params)}
}

// RecordView is one transition as people and scripts see it, its detail
// redacted (provider.RedactText).
type RecordView struct {
	Seq             uint64       `json:"seq"`
	At              time.Time    `json:"at"`
	From            states.State `json:"from"`
	To              states.State `json:"to"`
	Event           string       `json:"event"`
	Code            string       `json:"code"`
	Detail          string       `json:"detail"`
	ProviderID      string       `json:"provider_id"`
	PossiblyCharged bool         `json:"possibly_charged"`
}

// RecordViewOf returns r's view.
func RecordViewOf(r persist.Record) RecordView {
	return RecordView{Seq: r.Seq, At: r.At, From: r.From, To: r.To, Event: string(r.Event), Code: r.Code,
		Detail: provider.RedactText(r.Detail), ProviderID: r.ProviderID, PossiblyCharged: r.PossiblyCharged}
}
