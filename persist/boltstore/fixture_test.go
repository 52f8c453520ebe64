package boltstore_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// The fixtures testdata/schema1.db, schema2.db and schema3.db are
// databases written by the schema-1 store (commit 442e82c), the schema-2
// store (commit 8b60a57) and the schema-3 store (commit ab8a96f):
// TestWriteFixture, run once at each commit with
//
//	CAPTCHAFSM_WRITE_FIXTURE=$PWD/testdata/schema1.db go test -run '^TestWriteFixture$' ./persist/boltstore/
//
// (schema2.db, schema3.db for the others) wrote the tasks and histories of
// fixtureTasks into it. Their content is deterministic (fixed ids and
// times), so later tests compare what a newer store reads from the files
// with fixtureTasks.

// fixtureBase is the creation time of the fixture's first task.
var fixtureBase = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)

// fixtureStep is one transition of a fixture task after its creation.
type fixtureStep struct {
	ev     transitions.Event
	to     states.State
	code   string
	pid    string
	charge bool // the record's PossiblyCharged
	change func(*persist.Task)
}

// fixtureTask is a task of the fixture and the transitions that made it.
type fixtureTask struct {
	task  persist.Task // as created (Params, Ref, Method, times)
	steps []fixtureStep
}

// fixtureID returns the fixture's i-th id: a UUIDv7 shape, increasing.
func fixtureID(i int) string {
	return fmt.Sprintf("01974a1c-%04x-7000-8000-%012x", i, i)
}

// fixtureTasks are the fixture's tasks: one of every kind a resuming
// engine meets, then finished ones for volume.
func fixtureTasks() []fixtureTask {
	sending := fixtureStep{ev: transitions.SubmitSending, to: states.Submitting, change: func(t *persist.Task) { t.Submits++ }}
	accepted := func(pid string) fixtureStep {
		return fixtureStep{ev: transitions.SubmitAccepted, to: states.Polling, pid: pid, change: func(t *persist.Task) {
			t.ProviderID, t.PollSince, t.NextAt = pid, t.Updated, t.Updated.Add(20*time.Second)
		}}
	}
	notReady := fixtureStep{ev: transitions.NotReady, to: states.Polling, code: "CAPCHA_NOT_READY", change: func(t *persist.Task) {
		t.Polls++
		t.Code, t.NextAt = "CAPCHA_NOT_READY", t.Updated.Add(5*time.Second)
	}}
	solved := func(token string) fixtureStep {
		return fixtureStep{ev: transitions.Solved, to: states.Done, change: func(t *persist.Task) {
			t.Polls++
			t.Code, t.Token, t.Cost, t.NextAt = "", token, "0.00299", time.Time{}
		}}
	}
	turnstile := map[string]string{"sitekey": "0x4AAAAAAAB", "pageurl": "https://shop.example/checkout"}
	recaptcha := map[string]string{"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-", "pageurl": "https://example.com/login",
		"proxy": "user:secret@10.0.0.1:3128", "proxytype": "HTTP"}

	var out []fixtureTask
	add := func(ref, method string, params map[string]string, steps ...fixtureStep) {
		i := len(out)
		at := fixtureBase.Add(time.Duration(i) * time.Second)
		out = append(out, fixtureTask{task: persist.Task{ID: fixtureID(i), Ref: ref, Method: method, Params: params,
			Created: at, Updated: at, NextAt: at}, steps: steps})
	}
	add("done-1", "turnstile", turnstile, sending, accepted("9000000001"), notReady, solved("0.tok-done-1"))
	add("failed-1", "turnstile", turnstile, sending,
		fixtureStep{ev: transitions.PermanentError, to: states.Failed, code: "ERROR_BAD_PARAMETERS",
			change: func(t *persist.Task) { t.Code, t.NextAt = "ERROR_BAD_PARAMETERS", time.Time{} }})
	add("fresh", "turnstile", turnstile)
	add("", "userrecaptcha", recaptcha) // no ref
	add("intent", "turnstile", turnstile, sending)
	add("charged", "userrecaptcha", recaptcha, sending,
		fixtureStep{ev: transitions.PossiblyCharged, to: states.Submitting, charge: true})
	add("backoff", "turnstile", turnstile, sending,
		fixtureStep{ev: transitions.TransientError, to: states.Backoff, code: "ERROR_NO_SLOT_AVAILABLE", change: func(t *persist.Task) {
			t.Retries++
			t.Code, t.NextAt = "ERROR_NO_SLOT_AVAILABLE", t.Updated.Add(5*time.Second)
		}})
	add("polling", "turnstile", turnstile, sending, accepted("9000000002"), notReady)
	add("resubmitting", "userrecaptcha", recaptcha, sending, accepted("9000000003"),
		fixtureStep{ev: transitions.ResubmitNeeded, to: states.Resubmitting, code: "ERROR_CAPTCHA_UNSOLVABLE", change: func(t *persist.Task) {
			t.Polls++
			t.Code, t.ProviderID, t.PollSince = "ERROR_CAPTCHA_UNSOLVABLE", "", time.Time{}
		}})
	add("parked", "turnstile", turnstile, sending,
		fixtureStep{ev: transitions.AccountError, to: states.NeedsAccountFix, code: "ERROR_ZERO_BALANCE",
			change: func(t *persist.Task) { t.Code, t.NextAt = "ERROR_ZERO_BALANCE", time.Time{} }})
	for i := range 20 {
		add(fmt.Sprintf("bulk-%02d", i), "turnstile", turnstile, sending, accepted(fmt.Sprint(9000000100+i)),
			notReady, notReady, solved(fmt.Sprintf("0.tok-bulk-%02d", i)))
	}
	return out
}

// fixtureState is a fixture task as the store holds it after its steps,
// with its history.
func fixtureState(ft fixtureTask) (*persist.Task, []persist.Record) {
	t := ft.task
	t.Params = nil
	t.State, t.Seq = states.Submitting, 1
	hist := []persist.Record{{Seq: 1, At: t.Created, Event: transitions.Created, To: states.Submitting}}
	for _, st := range ft.steps {
		at := t.Updated.Add(1500 * time.Millisecond)
		rec := persist.Record{Seq: t.Seq + 1, At: at, From: t.State, Event: st.ev, To: st.to, Code: st.code,
			ProviderID: st.pid, PossiblyCharged: st.charge}
		if st.charge {
			rec.Detail = "the process stopped after sending in.php"
		}
		t.State, t.Updated, t.Seq = st.to, at, rec.Seq
		if st.change != nil {
			st.change(&t)
		}
		hist = append(hist, rec)
	}
	return &t, hist
}

// writeFixture writes fixtureTasks into a new database at path with the
// store of this commit.
func writeFixture(t *testing.T, path string) {
	ctx := context.Background()
	s, err := boltstore.Open(path, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	for _, ft := range fixtureTasks() {
		created := ft.task
		require.NoError(t, s.Create(ctx, &created))
		_, hist := fixtureState(ft)
		for k := 1; k <= len(ft.steps); k++ {
			// The task after k steps, applied from its state after k-1.
			next, _ := fixtureState(fixtureTask{task: ft.task, steps: ft.steps[:k]})
			next.Seq--
			rec := hist[k]
			require.NoError(t, s.Apply(ctx, next, &rec))
		}
	}
}

func TestWriteFixture(t *testing.T) {
	path := os.Getenv("CAPTCHAFSM_WRITE_FIXTURE")
	if path == "" {
		t.Skip("set CAPTCHAFSM_WRITE_FIXTURE=PATH to write the fixture database")
	}
	_ = os.Remove(path)
	writeFixture(t, path)
}
