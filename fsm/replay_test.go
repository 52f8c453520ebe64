package fsm_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// mv is one hand-written move: the event and the state it should reach.
type mv struct {
	ev transitions.Event
	to states.State
}

// history writes a history as the engine would: the creation record, then
// one record per move with the next seq and From the previous To.
func history(moves ...mv) []persist.Record {
	h := []persist.Record{{Seq: 1, Event: transitions.Created, To: transitions.Initial}}
	for _, m := range moves {
		last := h[len(h)-1]
		h = append(h, persist.Record{Seq: last.Seq + 1, From: last.To, Event: m.ev, To: m.to})
	}
	return h
}

var (
	happy = history(
		mv{transitions.SubmitSending, states.Submitting},
		mv{transitions.SubmitAccepted, states.Polling},
		mv{transitions.NotReady, states.Polling},
		mv{transitions.NotReady, states.Polling},
		mv{transitions.NotReady, states.Polling},
		mv{transitions.Solved, states.Done},
	)
	retry = history(
		mv{transitions.SubmitSending, states.Submitting},
		mv{transitions.TransientError, states.Backoff},
		mv{transitions.BackoffElapsed, states.Submitting},
		mv{transitions.SubmitSending, states.Submitting},
		mv{transitions.RateLimited, states.Backoff},
		mv{transitions.BackoffElapsed, states.Submitting},
		mv{transitions.SubmitSending, states.Submitting},
		mv{transitions.SubmitAccepted, states.Polling},
		mv{transitions.TransientError, states.Polling},
		mv{transitions.Solved, states.Done},
	)
	resubmit = history(
		mv{transitions.SubmitSending, states.Submitting},
		mv{transitions.SubmitAccepted, states.Polling},
		mv{transitions.NotReady, states.Polling},
		mv{transitions.ResubmitNeeded, states.Resubmitting},
		mv{transitions.ResubmitStarted, states.Submitting},
		mv{transitions.SubmitSending, states.Submitting},
		mv{transitions.SubmitAccepted, states.Polling},
		mv{transitions.Solved, states.Done},
	)
	accountFix = history(
		mv{transitions.SubmitSending, states.Submitting},
		mv{transitions.AccountError, states.NeedsAccountFix},
		mv{transitions.AccountFixed, states.Submitting},
		mv{transitions.SubmitSending, states.Submitting},
		mv{transitions.SubmitAccepted, states.Polling},
		mv{transitions.Solved, states.Done},
	)
)

func TestReplayGood(t *testing.T) {
	tests := []struct {
		name string
		h    []persist.Record
		want states.State
	}{
		{"happy path", happy, states.Done},
		{"retry", retry, states.Done},
		{"resubmit", resubmit, states.Done},
		{"account fix", accountFix, states.Done},
		{"created only", history(), states.Submitting},
		{"crashed mid-submit", history(
			mv{transitions.SubmitSending, states.Submitting},
			mv{transitions.PossiblyCharged, states.Submitting},
		), states.Submitting},
		{"parked in account fix", history(
			mv{transitions.BreakerOpen, states.NeedsAccountFix},
		), states.NeedsAccountFix},
		{"poll timeout", history(
			mv{transitions.SubmitSending, states.Submitting},
			mv{transitions.SubmitAccepted, states.Polling},
			mv{transitions.NotReady, states.Polling},
			mv{transitions.PollTimeout, states.Failed},
		), states.Failed},
		{"retries exhausted", history(
			mv{transitions.SubmitSending, states.Submitting},
			mv{transitions.TransientError, states.Backoff},
			mv{transitions.BackoffElapsed, states.Submitting},
			mv{transitions.SubmitSending, states.Submitting},
			mv{transitions.RetriesExhausted, states.Failed},
		), states.Failed},
		{"cancelled in backoff", history(
			mv{transitions.SubmitSending, states.Submitting},
			mv{transitions.TransientError, states.Backoff},
			mv{transitions.Cancelled, states.Failed},
		), states.Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fsm.Replay(tt.h)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// tamper returns a copy of h changed by f.
func tamper(h []persist.Record, f func([]persist.Record) []persist.Record) []persist.Record {
	return f(append([]persist.Record(nil), h...))
}

func TestReplayTampered(t *testing.T) {
	tests := []struct {
		name    string
		h       []persist.Record
		seq     uint64
		reason  string
		illegal bool // the refusal is the machine's: errors.Is(err, ErrIllegal)
	}{
		{"empty", nil, 0, "empty history", false},
		{"empty slice", []persist.Record{}, 0, "empty history", false},
		{"missing first record", happy[1:], 2, "first record has seq 2, want 1", false},
		{"first record not created", tamper(happy, func(h []persist.Record) []persist.Record {
			h[0].Event = transitions.SubmitSending
			return h
		}), 1, `first record is "submit_sending", want "created"`, false},
		{"first record from a state", tamper(happy, func(h []persist.Record) []persist.Record {
			h[0].From = states.Polling
			return h
		}), 1, "first record starts from Polling, want [*]", false},
		{"first record enters polling", tamper(happy, func(h []persist.Record) []persist.Record {
			h[0].To = states.Polling
			return h
		}), 1, "first record enters Polling, want Submitting", false},
		{"seq gap", tamper(happy, func(h []persist.Record) []persist.Record {
			return append(h[:3], h[4:]...) // drop seq 4
		}), 5, "seq 5 follows seq 3 (want 4)", false},
		{"seq repeated", tamper(happy, func(h []persist.Record) []persist.Record {
			h[4].Seq = 4
			return h
		}), 4, "seq 4 follows seq 4 (want 5)", false},
		{"seq zero later", tamper(happy, func(h []persist.Record) []persist.Record {
			h[2].Seq = 0
			return h
		}), 0, "seq 0 follows seq 2 (want 3)", false},
		{"wrong from", tamper(happy, func(h []persist.Record) []persist.Record {
			h[3].From = states.Submitting
			return h
		}), 4, "record starts from Submitting but the machine is in Polling", false},
		{"wrong to", tamper(happy, func(h []persist.Record) []persist.Record {
			h[2].To = states.Done
			return h
		}), 3, "the machine reaches Polling, not Done", false},
		{"illegal event", append(append([]persist.Record(nil), happy...),
			persist.Record{Seq: 8, From: states.Done, Event: transitions.Solved, To: states.Done}),
			8, `no transition from Done on "solved"`, true},
		{"illegal event mid-history", tamper(retry, func(h []persist.Record) []persist.Record {
			h[3].Event = transitions.Solved // Backoff --solved-->
			return h
		}), 4, `no transition from Backoff on "solved"`, true},
		{"unknown event", tamper(happy, func(h []persist.Record) []persist.Record {
			h[2].Event = "teleport"
			return h
		}), 3, `no transition from Submitting on "teleport" (unknown event)`, true},
		{"created again", tamper(happy, func(h []persist.Record) []persist.Record {
			h[5].Event = transitions.Created
			return h
		}), 6, `no transition from Polling on "created" (unknown event)`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fsm.Replay(tt.h)
			require.ErrorIs(t, err, fsm.ErrReplay)
			assert.Equal(t, states.State(""), got)
			var re *fsm.ReplayError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tt.seq, re.Seq, "names the first refused record")
			assert.Equal(t, tt.reason, re.Reason)
			assert.Equal(t, tt.illegal, errors.Is(err, fsm.ErrIllegal), "ErrIllegal")
			var ill *fsm.IllegalError
			assert.Equal(t, tt.illegal, errors.As(err, &ill), "*IllegalError")
			// The error names the record as stored.
			for _, r := range tt.h {
				if r.Seq == re.Seq && r.Event == re.Event {
					assert.Equal(t, r.From, re.From)
					assert.Equal(t, r.To, re.To)
				}
			}
		})
	}
}

func TestReplayErrorMessage(t *testing.T) {
	h := history(
		mv{transitions.SubmitSending, states.Submitting},
		mv{transitions.SubmitAccepted, states.Polling},
		mv{transitions.Solved, states.Done},
		mv{transitions.Solved, states.Done},
	)
	_, err := fsm.Replay(h)
	assert.EqualError(t, err, `fsm: replay refused at seq 5 (Done --solved--> Done): no transition from Done on "solved"`)

	_, err = fsm.Replay(nil)
	assert.EqualError(t, err, "fsm: replay refused: empty history")

	_, err = fsm.Replay(happy[1:])
	assert.EqualError(t, err, "fsm: replay refused at seq 2 (Submitting --submit_sending--> Submitting): first record has seq 2, want 1")

	h = append([]persist.Record(nil), happy...)
	h[0].To = ""
	_, err = fsm.Replay(h)
	assert.EqualError(t, err, "fsm: replay refused at seq 1 ([*] --created--> [*]): first record enters [*], want Submitting")
}

// TestReplayAnnotations: a report's record notes without moving; one that
// claims to move is refused.
func TestReplayAnnotations(t *testing.T) {
	base := []persist.Record{
		{Seq: 1, Event: transitions.Created, To: states.Submitting},
		{Seq: 2, From: states.Submitting, Event: transitions.SubmitSending, To: states.Submitting},
		{Seq: 3, From: states.Submitting, Event: transitions.SubmitAccepted, To: states.Polling},
		{Seq: 4, From: states.Polling, Event: transitions.Solved, To: states.Done},
	}
	got, err := fsm.Replay(append(base, persist.Record{Seq: 5, From: states.Done, Event: transitions.Reported, To: states.Done}))
	require.NoError(t, err)
	assert.Equal(t, states.Done, got)

	_, err = fsm.Replay(append(base, persist.Record{Seq: 5, From: states.Done, Event: transitions.Reported, To: states.Submitting}))
	require.ErrorIs(t, err, fsm.ErrReplay)
	assert.Contains(t, err.Error(), "annotation")
}
