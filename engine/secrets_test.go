package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// TestKeyNeverLeaks runs a faulty batch with a recognisable key and scans
// everything the engine leaves behind: logs at debug level, the database
// file, history, results and every error.
func TestKeyNeverLeaks(t *testing.T) {
	const key = "deadbeefcafef00d0123456789abcdef"
	synctest.Test(t, func(t *testing.T) {
		faults := providersim.FaultRates{HTTP500: 0.1, HTML502: 0.1, Drop: 0.05, Slow: 0.05, SlowDelay: 40 * time.Second}
		sim := providersim.New(providersim.Config{Seed: 4, Key: key,
			Faults: providersim.Faults{Submit: faults, Poll: faults}})
		client, err := provider.New(provider.Config{BaseURL: providersim.InProcessURL, Key: key, HTTPClient: sim.Client()})
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "secrets.db")
		st, err := boltstore.Open(path, nil)
		require.NoError(t, err)
		var logs bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		eng, err := engine.Open(context.Background(), engine.Config{Store: st, API: client, Logger: logger, FetchCost: true})
		require.NoError(t, err)
		ctx := context.Background()
		reqs := mixed(60)
		// A proxy with credentials: redaction of task parameters is the
		// CLI's job; here it must simply never carry the key.
		reqs[1].Params["proxy"] = "user:hunter2@127.0.0.1:3128"
		reqs[1].Params["proxytype"] = "HTTP"
		ids, _, err := eng.SubmitMany(ctx, reqs)
		require.NoError(t, err)
		var out strings.Builder
		for _, id := range ids {
			res, err := eng.Wait(ctx, id)
			fmt.Fprintf(&out, "%v %+v %#v\n", err, res, err)
			h, herr := eng.History(ctx, id)
			require.NoError(t, herr)
			b, _ := json.Marshal(h)
			out.Write(b)
		}
		// Errors of bad input and of a closed engine too.
		_, err = eng.Submit(ctx, engine.Request{Method: "userrecaptcha", Params: map[string]string{"pageurl": "nope"}})
		fmt.Fprintf(&out, "%v %#v\n", err, err)
		_, err = provider.New(provider.Config{BaseURL: "http://x", Key: key[:31] + "Z"})
		fmt.Fprintf(&out, "%v %#v\n", err, err)
		fmt.Fprintf(&out, "%+v\n", eng.Stats())
		require.NoError(t, eng.Close())
		require.NoError(t, st.Close())
		file, err := os.ReadFile(path)
		require.NoError(t, err)

		require.NotEmpty(t, sim.Ledger().Faults, "error paths were exercised")
		for name, hay := range map[string]string{"logs": logs.String(), "results and errors": out.String(), "database file": string(file)} {
			assert.NotContains(t, strings.ToLower(hay), key, "the key leaked into the %s", name)
		}
		assert.Contains(t, logs.String(), `"task"`, "logs were written")
	})
}
