package dashboard

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestLayout(t *testing.T) {
	l := machineLayout
	require.Len(t, l.pos, len(states.All()))
	all := states.All()
	for i, a := range all {
		for _, b := range all[i+1:] {
			ba, bb := nodeBox(l.pos[a], 10), nodeBox(l.pos[b], 10)
			overlap := ba.min.x < bb.max.x && bb.min.x < ba.max.x && ba.min.y < bb.max.y && bb.min.y < ba.max.y
			assert.False(t, overlap, "%s and %s overlap", a, b)
		}
	}
	// The happy path runs along one row, left to right.
	y := l.pos[states.Submitting].y
	assert.Equal(t, y, l.pos[states.Polling].y)
	assert.Equal(t, y, l.pos[states.Done].y)
	assert.Less(t, l.pos[states.Submitting].x, l.pos[states.Polling].x)
	assert.Less(t, l.pos[states.Polling].x, l.pos[states.Done].x)
	// Stops below it, detours above.
	assert.Greater(t, l.pos[states.Failed].y, y)
	assert.Greater(t, l.pos[states.NeedsAccountFix].y, y)
	assert.Less(t, l.pos[states.Backoff].y, y)
	assert.Less(t, l.pos[states.Resubmitting].y, y)
	// Terminal states take the last column.
	for _, s := range all {
		if !s.Terminal() {
			assert.Less(t, l.pos[s].x, l.pos[states.Done].x, s)
		}
	}
}

func TestRoutesAvoidBoxes(t *testing.T) {
	l := machineLayout
	for _, e := range transitions.Table() {
		c := route(l, edgeKey{e.From, e.To}, 0)
		for s, p := range l.pos {
			if s == e.From || s == e.To {
				continue
			}
			b := nodeBox(p, 0)
			for i := 1; i < 50; i++ {
				assert.False(t, b.contains(c.at(float64(i)/50)), "%s → %s crosses %s", e.From, e.To, s)
			}
		}
	}
}

func rec(from, to states.State, ev transitions.Event) persist.Record {
	return persist.Record{From: from, To: to, Event: ev}
}

func TestDiagramSVG(t *testing.T) {
	hist := []persist.Record{
		rec("", states.Submitting, transitions.Created),
		rec(states.Submitting, states.Submitting, transitions.SubmitSending),
		rec(states.Submitting, states.Polling, transitions.SubmitAccepted),
		rec(states.Polling, states.Polling, transitions.NotReady),
		rec(states.Polling, states.Polling, transitions.NotReady),
		rec(states.Polling, states.Failed, transitions.PollTimeout),
	}
	svg := string(diagramSVG(states.Failed, hist))

	// Well-formed XML.
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	assert.Equal(t, 1, strings.Count(svg, "node current"))
	assert.Contains(t, svg, `<g class="node current terminal" data-state="Failed">`)
	assert.Contains(t, svg, `<g class="node visited" data-state="Polling">`)
	assert.Contains(t, svg, `<g class="node" data-state="Backoff">`)
	// One arrow per pair of states, plus the start; taken ones labelled.
	pairs := map[edgeKey]bool{}
	for _, e := range transitions.Table() {
		pairs[edgeKey{e.From, e.To}] = true
	}
	assert.Equal(t, len(pairs)+1, strings.Count(svg, "<path d=")-2, "two paths are arrowheads")
	assert.Equal(t, 5, strings.Count(svg, `class="edge taken"`), "the start, S→S, S→P, P→P and P→F")
	assert.Contains(t, svg, ">not_ready ×2</text>")
	assert.Contains(t, svg, ">poll_timeout</text>")
	assert.Contains(t, svg, "<title>Submitting → Failed: retries_exhausted, permanent_error, unknown_error, cancelled, deadline_passed</title>")

	// A state that is not one of the seven highlights nothing.
	assert.NotContains(t, string(diagramSVG("Bogus", nil)), "node current")
}

func TestTimelineGroupsRepeats(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(r persist.Record, d time.Duration, code string) persist.Record {
		r.At, r.Code = t0.Add(d), code
		return r
	}
	charged := rec(states.Submitting, states.Submitting, transitions.PossiblyCharged)
	charged.PossiblyCharged = true
	hist := []persist.Record{
		at(rec("", states.Submitting, transitions.Created), 0, ""),
		at(rec(states.Submitting, states.Submitting, transitions.SubmitSending), time.Second, ""),
		at(charged, 2*time.Second, ""),
		at(rec(states.Submitting, states.Submitting, transitions.SubmitSending), 3*time.Second, ""),
		at(rec(states.Submitting, states.Polling, transitions.SubmitAccepted), 3*time.Second, ""),
		at(rec(states.Polling, states.Polling, transitions.NotReady), 8*time.Second, "CAPCHA_NOT_READY"),
		at(rec(states.Polling, states.Polling, transitions.NotReady), 13*time.Second, "CAPCHA_NOT_READY"),
		at(rec(states.Polling, states.Polling, transitions.NotReady), 18*time.Second, "CAPCHA_NOT_READY"),
		at(rec(states.Polling, states.Polling, transitions.TransientError), 23*time.Second, "TRANSPORT_ERROR"),
		at(rec(states.Polling, states.Polling, transitions.NotReady), 28*time.Second, "CAPCHA_NOT_READY"),
		at(rec(states.Polling, states.Done, transitions.Solved), 33*time.Second, ""),
	}
	steps := timeline(hist, states.Done)
	var got []string
	for _, s := range steps {
		got = append(got, s.First.Event+"×"+string(rune('0'+s.Count)))
	}
	assert.Equal(t, []string{"created×1", "submit_sending×1", "possibly_charged×1", "submit_sending×1",
		"submit_accepted×1", "not_ready×3", "transient_error×1", "not_ready×1", "solved×1"}, got)
	nr := steps[5]
	assert.Equal(t, 10*time.Second, nr.Span)
	assert.Equal(t, 8*time.Second, nr.Offset)
	assert.Equal(t, "not_ready", nr.Class)
	assert.NotEmpty(t, nr.Meaning)
	assert.True(t, steps[2].Charged)
	assert.True(t, steps[0].FromStart)
	assert.True(t, steps[8].Settles)
	for _, s := range steps {
		assert.False(t, s.InFlight)
	}

	// A history that ends with the intent to submit, task not settled: in
	// flight, possibly charged.
	inflight := timeline(hist[:2], states.Submitting)
	assert.True(t, inflight[1].InFlight)
	assert.False(t, timeline(hist[:2], states.Failed)[1].InFlight)
}

func TestRedactParams(t *testing.T) {
	got := provider.RedactParams(map[string]string{
		"proxy":    "user:pa55@10.0.0.1:8080",
		"body":     "iVBORw0KGgo=",
		"pageurl":  "https://admin:hunter2@example.com/login",
		"pingback": "https://example.com/cb",
		"note":     "mail me at a@b",
	})
	assert.Equal(t, "***:***@10.0.0.1:8080", got["proxy"])
	assert.Equal(t, "<12 characters of base64>", got["body"])
	assert.Equal(t, "https://admin:xxxxx@example.com/login", got["pageurl"])
	assert.Equal(t, "https://example.com/cb", got["pingback"])
	assert.Equal(t, "mail me at ***@b", got["note"])
	assert.Equal(t, "dial ***:***@10.0.0.1:8080 failed", provider.RedactText("dial u:p@10.0.0.1:8080 failed"))
}

func TestFormatOffset(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                             "+0ms",
		850 * time.Millisecond:        "+850ms",
		12400 * time.Millisecond:      "+12.4s",
		3*time.Minute + 5*time.Second: "+3m05s",
		2*time.Hour + 7*time.Minute:   "+2h07m",
		-1500 * time.Millisecond:      "−1.5s",
	} {
		assert.Equal(t, want, formatOffset(d), d)
	}
}
