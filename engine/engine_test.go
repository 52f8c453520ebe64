package engine_test

import (
	"context"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// recaptcha is a valid token-method request.
func recaptcha(ref string) engine.Request {
	return engine.Request{Method: "userrecaptcha", Ref: ref, Params: map[string]string{
		"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-", "pageurl": "https://example.com/login"}}
}

type bundle struct {
	t     *testing.T
	path  string
	store persist.Store
	api   *fakeAPI
	eng   *engine.Engine
}

// setup opens a store in a temp dir and an engine on the fake API. Call it
// inside a synctest bubble.
func setup(t *testing.T, pol engine.Policy) *bundle {
	t.Helper()
	b := &bundle{t: t, path: filepath.Join(t.TempDir(), "test.db"), api: newFake()}
	b.openStore()
	b.open(pol)
	t.Cleanup(func() {
		if b.eng != nil {
			_ = b.eng.Close()
		}
		if b.store != nil {
			_ = b.store.Close()
		}
	})
	return b
}

func (b *bundle) openStore() {
	st, err := boltstore.Open(b.path, &boltstore.Options{NoSync: true})
	require.NoError(b.t, err)
	b.store = st
}

func (b *bundle) open(pol engine.Policy) {
	eng, err := engine.Open(context.Background(), engine.Config{Store: b.store, API: b.api, Policy: pol})
	require.NoError(b.t, err)
	b.eng = eng
}

// reopenWith replaces the bundle's engine with one opened on cfg (a
// wrapped store, a hook, a policy): the old engine is closed first, the new
// one at cleanup.
func (b *bundle) reopenWith(cfg engine.Config) *engine.Engine {
	b.t.Helper()
	require.NoError(b.t, b.eng.Close())
	eng, err := engine.Open(context.Background(), cfg)
	require.NoError(b.t, err)
	b.eng = eng
	return eng
}

// restart closes the engine and store and opens both again, as a new
// process would.
func (b *bundle) restart(pol engine.Policy) {
	require.NoError(b.t, b.eng.Close())
	require.NoError(b.t, b.store.Close())
	b.openStore()
	b.open(pol)
}

func (b *bundle) history(id string) []persist.Record {
	h, err := b.store.History(context.Background(), id)
	require.NoError(b.t, err)
	return h
}

func events(h []persist.Record) []transitions.Event {
	out := make([]transitions.Event, len(h))
	for i, r := range h {
		out[i] = r.Event
	}
	return out
}

// at returns the time of the first record with event ev after index from.
func at(t *testing.T, h []persist.Record, ev transitions.Event, nth int) time.Time {
	t.Helper()
	for _, r := range h {
		if r.Event == ev {
			if nth == 0 {
				return r.At
			}
			nth--
		}
	}
	t.Fatalf("no %s record", ev)
	return time.Time{}
}

func TestHappyPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		b.api.pollPlan = repeat("CAPCHA_NOT_READY", 2)
		start := time.Now()
		res, err := b.eng.Solve(context.Background(), recaptcha("r1"))
		require.NoError(t, err)
		assert.Equal(t, states.Done, res.State)
		assert.Equal(t, "token-1001", res.Token)
		assert.Equal(t, 1, res.Submits)
		assert.Equal(t, 3, res.Polls)
		h := b.history(res.ID)
		assert.Equal(t, []transitions.Event{transitions.Created, transitions.SubmitSending, transitions.SubmitAccepted,
			transitions.NotReady, transitions.NotReady, transitions.Solved}, events(h))
		// reCAPTCHA-class: first poll after 20 s, then every 5 s.
		assert.Equal(t, 20*time.Second, at(t, h, transitions.NotReady, 0).Sub(start))
		assert.Equal(t, 25*time.Second, at(t, h, transitions.NotReady, 1).Sub(start))
		assert.Equal(t, 30*time.Second, at(t, h, transitions.Solved, 0).Sub(start))
		assert.Equal(t, "1001", h[2].ProviderID)
		submits, polls := b.api.counts()
		assert.Equal(t, 1, submits)
		assert.Equal(t, 3, polls)
	})
}
