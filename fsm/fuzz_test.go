package fsm_test

import (
	"errors"
	"testing"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// fuzzEvents and fuzzStates are what fuzz bytes pick from: every real
// value plus ones that must be refused.
func fuzzEvents() []transitions.Event {
	return append(transitions.Events(), transitions.Created, "teleport")
}

func fuzzStates() []states.State {
	return append(states.All(), "", "Sleeping")
}

const fuzzMaxRecords = 16

// decodeHistory turns fuzz bytes into a history, two bytes a record. The
// first byte picks the event. The second decides how honest the record is:
// mostly the record the engine would write (next seq, From the previous
// To, To what the table says), sometimes with its seq, From or To replaced,
// so that both long valid histories and every kind of tampering occur.
func decodeHistory(data []byte) []persist.Record {
	evs, sts := fuzzEvents(), fuzzStates()
	var h []persist.Record
	var prevSeq uint64
	var prevTo states.State
	for i := 0; i+1 < len(data) && len(h) < fuzzMaxRecords; i += 2 {
		a, b := data[i], data[i+1]
		var r persist.Record
		if len(h) == 0 && a < 224 {
			r = persist.Record{Seq: 1, Event: transitions.Created, To: transitions.Initial}
		} else {
			ev := evs[int(a)%len(evs)]
			to, err := transitions.Next(prevTo, ev)
			if err != nil {
				to = sts[int(b>>3)%len(sts)]
			}
			r = persist.Record{Seq: prevSeq + 1, From: prevTo, Event: ev, To: to}
		}
		pick := int(b >> 3)
		switch b & 7 {
		case 5:
			r.Seq = prevSeq + uint64(pick%4) // 0, 1 (honest), 2, 3 ahead
			if pick%4 == 0 && pick&4 != 0 {
				r.Seq = 0
			}
		case 6:
			r.From = sts[pick%len(sts)]
		case 7:
			r.To = sts[pick%len(sts)]
		}
		h = append(h, r)
		prevSeq, prevTo = r.Seq, r.To
	}
	return h
}

// oracle replays h with transitions.Next, which shares no code with
// looplab, and returns the final state or the seq of the first refused
// record.
func oracle(h []persist.Record) (final states.State, refusedSeq uint64, ok bool) {
	if len(h) == 0 {
		return "", 0, false
	}
	first := h[0]
	if first.Seq != 1 || first.Event != transitions.Created || first.From != "" || first.To != transitions.Initial {
		return "", first.Seq, false
	}
	cur := first.To
	for i, r := range h[1:] {
		if r.Seq != h[i].Seq+1 || r.From != cur {
			return "", r.Seq, false
		}
		to, err := transitions.Next(cur, r.Event)
		if err != nil || to != r.To {
			return "", r.Seq, false
		}
		cur = to
	}
	return cur, 0, true
}

// encodeHonest is the inverse of decodeHistory for an honest history of
// events after the creation record.
func encodeHonest(evs ...transitions.Event) []byte {
	all := fuzzEvents()
	data := []byte{0, 0}
	for _, ev := range evs {
		for i, e := range all {
			if e == ev {
				data = append(data, byte(i), 0)
			}
		}
	}
	return data
}

func FuzzReplay(f *testing.F) {
	f.Add([]byte{})
	f.Add(encodeHonest(transitions.SubmitSending, transitions.SubmitAccepted,
		transitions.NotReady, transitions.NotReady, transitions.NotReady, transitions.Solved))
	f.Add(encodeHonest(transitions.SubmitSending, transitions.TransientError, transitions.BackoffElapsed,
		transitions.SubmitSending, transitions.SubmitAccepted, transitions.ResubmitNeeded, transitions.ResubmitStarted,
		transitions.AccountError, transitions.AccountFixed, transitions.SubmitAccepted, transitions.Solved))
	f.Add(append(encodeHonest(transitions.SubmitSending, transitions.SubmitAccepted), 0, 5|2<<3)) // seq gap
	f.Add(append(encodeHonest(transitions.SubmitSending), 0, 6|2<<3))                             // wrong From
	f.Add(append(encodeHonest(transitions.SubmitSending), 0, 7|4<<3))                             // wrong To
	f.Add([]byte{250, 0, 1, 0})                                                                   // no creation record
	f.Fuzz(func(t *testing.T, data []byte) {
		h := decodeHistory(data)
		got, err := fsm.Replay(h)
		want, refused, ok := oracle(h)
		if err == nil {
			if len(h) == 0 || got != h[len(h)-1].To {
				t.Fatalf("Replay = %s, nil; last record %+v", got, h)
			}
			if !ok || got != want {
				t.Fatalf("Replay accepted a history the table refuses at seq %d: %+v", refused, h)
			}
			return
		}
		if !errors.Is(err, fsm.ErrReplay) {
			t.Fatalf("Replay error %v is not ErrReplay", err)
		}
		var re *fsm.ReplayError
		if !errors.As(err, &re) {
			t.Fatalf("Replay error %T is not *ReplayError", err)
		}
		if got != "" {
			t.Fatalf("Replay returned state %s with error %v", got, err)
		}
		if ok {
			t.Fatalf("Replay refused a history the table accepts (final %s): %v", want, err)
		}
		if re.Seq != refused {
			t.Fatalf("Replay refused seq %d, the table refuses seq %d: %v", re.Seq, refused, err)
		}
	})
}
