package providersim_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

// request kinds and what faults they take.
var kinds = []struct {
	kind  providersim.Kind
	path  string
	kv    []string
	rates func(*providersim.Faults) *providersim.FaultRates
}{
	{providersim.KindSubmit, "/in.php", []string{"method", "hcaptcha", "sitekey", "k", "pageurl", "https://example.com"},
		func(f *providersim.Faults) *providersim.FaultRates { return &f.Submit }},
	{providersim.KindPoll, "/res.php", []string{"action", "get", "id", "70000000001"},
		func(f *providersim.Faults) *providersim.FaultRates { return &f.Poll }},
	{providersim.KindBalance, "/res.php", []string{"action", "getbalance"},
		func(f *providersim.Faults) *providersim.FaultRates { return &f.Balance }},
	{providersim.KindReport, "/res.php", []string{"action", "reportgood", "id", "70000000001"},
		func(f *providersim.Faults) *providersim.FaultRates { return &f.Report }},
}

func TestFaults(t *testing.T) {
	for _, k := range kinds {
		t.Run(string(k.kind), func(t *testing.T) {
			t.Run("http500", func(t *testing.T) {
				var cfg providersim.Config
				k.rates(&cfg.Faults).HTTP500 = 1
				h := newHarness(t, cfg)
				status, body := h.post(k.path, form(k.kv...))
				assert.Equal(t, http.StatusInternalServerError, status)
				assert.NotContains(t, body, "OK")
				l := h.sim.Ledger()
				assert.Equal(t, 1, l.Faults[providersim.FaultKey{Kind: k.kind, Fault: providersim.FaultHTTP500}])
				assert.Equal(t, 1, l.Requests[k.kind])
				assert.Zero(t, l.Charged(), "answered before processing")
				assert.Empty(t, l.Answers)
			})
			t.Run("html502", func(t *testing.T) {
				var cfg providersim.Config
				k.rates(&cfg.Faults).HTML502 = 1
				h := newHarness(t, cfg)
				req, err := http.NewRequest(http.MethodPost, providersim.InProcessURL+k.path, nil)
				require.NoError(t, err)
				req.URL.RawQuery = form(k.kv...).Encode()
				resp, err := h.c.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
				assert.Equal(t, "text/html", resp.Header.Get("Content-Type"))
				_, body, err := h.send(req)
				require.NoError(t, err)
				assert.Contains(t, body, "<h1>502 Bad Gateway</h1>")
				l := h.sim.Ledger()
				assert.Equal(t, 2, l.Faults[providersim.FaultKey{Kind: k.kind, Fault: providersim.FaultHTML502}])
				assert.Zero(t, l.Charged())
			})
			t.Run("drop", func(t *testing.T) {
				var cfg providersim.Config
				cfg.Mix = providersim.NoErrors()
				k.rates(&cfg.Faults).Drop = 1
				h := newHarness(t, cfg)
				_, _, err := h.try(context.Background(), k.path, form(k.kv...))
				require.ErrorIs(t, err, providersim.ErrConnectionDropped)
				l := h.sim.Ledger()
				assert.Equal(t, 1, l.Faults[providersim.FaultKey{Kind: k.kind, Fault: providersim.FaultDrop}])
				if k.kind == providersim.KindSubmit {
					assert.Equal(t, 1, l.Charged(), "the request reached the server: charged")
					assert.Equal(t, 1, l.Answers["OK"])
				} else {
					assert.Zero(t, l.Charged())
				}
			})
			t.Run("slow", func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					var cfg providersim.Config
					cfg.Mix = providersim.NoErrors()
					k.rates(&cfg.Faults).Slow = 1
					h := newHarness(t, cfg)
					// The default hold outlasts a 30 s timeout.
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					start := time.Now()
					_, _, err := h.try(ctx, k.path, form(k.kv...))
					require.ErrorIs(t, err, context.DeadlineExceeded)
					assert.Equal(t, 30*time.Second, time.Since(start))
					want := 0
					if k.kind == providersim.KindSubmit {
						want = 1
					}
					assert.Equal(t, want, h.sim.Ledger().Charged(), "processed before the hold")

					// Without a deadline the answer comes after 35 s.
					start = time.Now()
					status, _ := h.post(k.path, form(k.kv...))
					assert.Equal(t, http.StatusOK, status)
					assert.Equal(t, 35*time.Second, time.Since(start))
					assert.Equal(t, 2, h.sim.Ledger().Faults[providersim.FaultKey{Kind: k.kind, Fault: providersim.FaultSlow}])
				})
			})
		})
	}
}

func TestFaultSlowDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{Faults: providersim.Faults{Balance: providersim.FaultRates{Slow: 1, SlowDelay: 2 * time.Second}}})
		start := time.Now()
		assert.Equal(t, "100", h.res("action", "getbalance"))
		assert.Equal(t, 2*time.Second, time.Since(start))
	})
}

func TestFaultRates(t *testing.T) {
	const n = 4000
	rates := providersim.FaultRates{HTTP500: 0.1, HTML502: 0.05, Drop: 0.05, Slow: 0.1, SlowDelay: time.Millisecond}
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{Seed: 9, NoRateRules: true, Faults: providersim.Faults{Balance: rates}})
		got := map[string]int{}
		for range n {
			status, body, err := h.try(context.Background(), "/res.php", form("action", "getbalance"))
			switch {
			case errors.Is(err, providersim.ErrConnectionDropped):
				got["drop"]++
			case err != nil:
				t.Fatal(err)
			case status == http.StatusInternalServerError:
				got["http500"]++
			case status == http.StatusBadGateway:
				got["html502"]++
			default:
				assert.Equal(t, "100", body)
			}
		}
		l := h.sim.Ledger()
		assert.Equal(t, got["drop"], l.Faults[providersim.FaultKey{Kind: providersim.KindBalance, Fault: providersim.FaultDrop}])
		assert.Equal(t, got["http500"], l.Faults[providersim.FaultKey{Kind: providersim.KindBalance, Fault: providersim.FaultHTTP500}])
		got["slow"] = l.Faults[providersim.FaultKey{Kind: providersim.KindBalance, Fault: providersim.FaultSlow}]
		assertRates(t, got, map[string]float64{"http500": 0.1, "html502": 0.05, "drop": 0.05, "slow": 0.1}, n)
		assert.Equal(t, n, l.Requests[providersim.KindBalance])
	})
}

func TestRoundTripperCancelled(t *testing.T) {
	h := newHarness(t, providersim.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := h.try(ctx, "/res.php", form("action", "getbalance"))
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, h.sim.Ledger().Requests[providersim.KindBalance], "a cancelled request never leaves")
}
