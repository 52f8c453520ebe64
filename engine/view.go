package engine

import (
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
)

// Task is a task as its users see it: what Wait, Solve, Get and List
// return, what OnTransition and subscribers receive, and the shape of
// `captchafsm list --json`, `history --json` and the dashboard's JSON API.
// Every field is always in its JSON form but Params (only a single task's
// view carries them) and the task's own options (when set).
type Task struct {
	ID     string       `json:"id"`
	Ref    string       `json:"ref"`
	Method string       `json:"method"`
	State  states.State `json:"state"`
	// Code is the last code that moved the task (the provider's, or the
	// engine's such as POLL_TIMEOUT or DEADLINE_EXCEEDED); empty after an
	// OK answer. transitions.Lookup explains it.
	Code string `json:"code"`
	// Submits counts in.php requests sent (or possibly sent), Retries the
	// transient errors counted against max_retries, Resubmits the new
	// provider tasks after UNSOLVABLE or TOKEN_EXPIRED, Polls the res.php
	// answers for the task.
	Submits   int `json:"submits"`
	Retries   int `json:"retries"`
	Resubmits int `json:"resubmits"`
	Polls     int `json:"polls"`
	// ProviderID is the provider's id of the current submit.
	ProviderID string `json:"provider_id"`
	// Token is the answer, once Done; Cost its price as the provider
	// reported it (Config.FetchCost).
	Token   string    `json:"token"`
	Cost    string    `json:"cost"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Seq is the sequence number of the task's last history record: of two
	// views of a task, the one with the higher Seq is the later (the hook
	// may see the moves of different tasks out of order).
	Seq uint64 `json:"seq"`
	// The task's own options, as it was submitted with them (see Request).
	Deadline     time.Time `json:"deadline,omitzero"`
	Priority     int       `json:"priority,omitempty"`
	MaxRetries   int       `json:"max_retries,omitempty"`
	MaxResubmits int       `json:"max_resubmits,omitempty"`
	// Labels are the request's labels (shared with the engine: do not
	// modify the map).
	Labels map[string]string `json:"labels,omitempty"`
	// Params are the request's parameters, as stored: only Get fills
	// them (see Redacted before showing them).
	Params map[string]string `json:"params,omitempty"`
}

// TaskOf returns the view of a stored task, with a copy of its Params
// (when loaded).
func TaskOf(t *persist.Task) Task {
	v := Task{ID: t.ID, Ref: t.Ref, Method: t.Method, State: t.State, Code: t.Code,
		Submits: t.Submits, Retries: t.Retries, Resubmits: t.Resubmits, Polls: t.Polls,
		ProviderID: t.ProviderID, Token: t.Token, Cost: t.Cost, Created: t.Created, Updated: t.Updated, Seq: t.Seq,
		Deadline: t.Options.Deadline, Priority: t.Options.Priority,
		MaxRetries: t.Options.MaxRetries, MaxResubmits: t.Options.MaxResubmits, Labels: t.Options.Labels}
	if t.Params != nil {
		v.Params = make(map[string]string, len(t.Params))
		for k, p := range t.Params {
			v.Params[k] = p
		}
	}
	return v
}

// Redacted returns t with the secrets of its Params hidden (proxy
// credentials: provider.RedactParams), to be shown to people and scripts.
func (t Task) Redacted() Task {
	t.Params = provider.RedactParams(t.Params)
	return t
}

// ViewOf is TaskOf(t).Redacted(): a stored task as the CLI and the
// dashboard show it.
func ViewOf(t *persist.Task) Task { return TaskOf(t).Redacted() }

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
