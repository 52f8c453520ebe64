package providersim_test

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

func TestLedger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		h := newHarness(t, providersim.Config{Mix: providersim.NoErrors()})
		a := h.mustID(h.recaptcha("same"))
		b := h.mustID(h.recaptcha("same")) // the same captcha, paid twice
		c := h.mustID(h.upload(png(300)))
		assert.Equal(t, "ERROR_PAGEURL", h.in("method", "hcaptcha", "sitekey", "k"))
		// The key and the answer format do not change a fingerprint.
		q := form("method", "userrecaptcha", "googlekey", "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-", "pageurl", "https://example.com/same", "json", "1")
		q.Set("key", "ffffffffffffffffffffffffffffffff")
		_, body := h.post("/in.php", q)
		d := decode(t, body).Request

		advance(time.Minute)
		h.res("action", "get", "id", a)
		h.res("action", "get", "ids", a+","+c+",x")
		h.res("action", "get2", "id", c)
		h.res("action", "getbalance")
		h.res("action", "reportgood", "id", c)
		h.res("action", "reportgood", "id", c)
		h.res("id", a)

		l := h.sim.Ledger()
		assert.Equal(t, map[providersim.Kind]int{
			providersim.KindSubmit:  5,
			providersim.KindPoll:    2,
			providersim.KindPollIDs: 4,
			providersim.KindGet2:    1,
			providersim.KindBalance: 1,
			providersim.KindReport:  2,
			providersim.KindOther:   1,
		}, l.Requests)
		assert.Equal(t, map[string]int{
			"OK":                     4 + 3 + 1 + 1, // submits, tokens (one, two in the batch), get2, balance
			"ERROR_PAGEURL":          1,
			"ERROR_WRONG_ID_FORMAT":  1,
			"OK_REPORT_RECORDED":     1,
			"ERROR_DUPLICATE_REPORT": 1,
			"ERROR_EMPTY_ACTION":     1,
		}, l.Answers)
		require.Equal(t, 4, l.Charged())
		ids := []string{a, b, c, d}
		for i, task := range l.Tasks {
			assert.Equal(t, ids[i], strconv.FormatInt(task.ID, 10))
			assert.Equal(t, start, task.Accepted)
		}
		assert.Equal(t, []string{"userrecaptcha", "userrecaptcha", "post", "userrecaptcha"},
			[]string{l.Tasks[0].Method, l.Tasks[1].Method, l.Tasks[2].Method, l.Tasks[3].Method})
		assert.InDelta(t, 3*0.00299+0.0005, l.Cost, 1e-12)
		assert.InDelta(t, 100-l.Cost, l.Balance, 1e-12)
		assert.Equal(t, map[int64]int{mustInt(t, a): 2, mustInt(t, c): 2}, l.Polls)
		assert.Equal(t, []int64{mustInt(t, b), mustInt(t, d)}, l.Orphaned())
		assert.Equal(t, []providersim.Fingerprint{l.Tasks[0].Fingerprint}, l.Duplicates())
		assert.Equal(t, l.Tasks[0].Fingerprint, l.Tasks[3].Fingerprint)
		assert.NotEqual(t, l.Tasks[0].Fingerprint, l.Tasks[2].Fingerprint)
		assert.Equal(t, providersim.Submits{Requests: 3, Accepted: 3}, l.Fingerprints[l.Tasks[0].Fingerprint])
		assert.Len(t, l.Fingerprints, 2, "rejected submits have no fingerprint")
		assert.Len(t, l.Tasks[0].Fingerprint.String(), 16)
		assert.Equal(t, "good", l.Tasks[2].Report)

		// A copy: changing it does not change the simulator's.
		l.Requests[providersim.KindSubmit] = 99
		l.Tasks[0].Polls = 99
		assert.Equal(t, 5, h.sim.Ledger().Requests[providersim.KindSubmit])
		assert.Equal(t, 2, h.sim.Ledger().Tasks[0].Polls)
	})
}

func TestFingerprintsCountRejectedMixDraws(t *testing.T) {
	h := newHarness(t, providersim.Config{Mix: providersim.Mix{Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 1}}})
	assert.Equal(t, "ERROR_NO_SLOT_AVAILABLE", h.recaptcha("a"))
	assert.Equal(t, "ERROR_NO_SLOT_AVAILABLE", h.recaptcha("a"))
	l := h.sim.Ledger()
	require.Len(t, l.Fingerprints, 1)
	for _, s := range l.Fingerprints {
		assert.Equal(t, providersim.Submits{Requests: 2, Accepted: 0}, s)
	}
	assert.Empty(t, l.Duplicates())
}

// TestManyTasksInFlight keeps 10,000 tasks in flight and checks their cost
// in memory, and that they can all be polled.
func TestManyTasksInFlight(t *testing.T) {
	const n = 10000
	synctest.Test(t, func(t *testing.T) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		h := newHarness(t, providersim.Config{Mix: providersim.NoErrors(), NoRateRules: true, Balance: 1000})
		for i := range n {
			h.mustID(h.recaptcha(strconv.Itoa(i)))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perTask := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
		t.Logf("heap per task in flight: %.0f bytes", perTask)
		assert.Less(t, perTask, 400.0)

		advance(time.Minute)
		l := h.sim.Ledger()
		require.Equal(t, n, l.Charged())
		for i := 0; i < n; i += 100 {
			ids := make([]string, 100)
			for j := range ids {
				ids[j] = strconv.FormatInt(l.Tasks[i+j].ID, 10)
			}
			parts := strings.Split(h.res("action", "get", "ids", strings.Join(ids, ",")), "|")
			require.Len(t, parts, 100)
			for _, p := range parts {
				require.True(t, strings.HasPrefix(p, "03A"), p)
			}
		}
		assert.Empty(t, h.sim.Ledger().Orphaned())
	})
}

func TestConcurrentClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{Seed: 5, NoRateRules: true})
		var wg sync.WaitGroup
		for w := range 20 {
			wg.Go(func() {
				for i := range 50 {
					id, ok := strings.CutPrefix(h.recaptcha(fmt.Sprintf("%d-%d", w, i)), "OK|")
					if !ok {
						continue
					}
					for {
						advance(5 * time.Second)
						if a := h.res("action", "get", "id", id); a != "CAPCHA_NOT_READY" {
							break
						}
					}
				}
			})
		}
		wg.Wait()
		l := h.sim.Ledger()
		assert.Equal(t, 1000, l.Requests[providersim.KindSubmit])
		assert.Empty(t, l.Orphaned())
		polls := 0
		for _, n := range l.Polls {
			polls += n
		}
		assert.Equal(t, l.Requests[providersim.KindPoll], polls)
		assert.InDelta(t, 100-l.Cost, h.sim.Balance(), 1e-9)
	})
}
