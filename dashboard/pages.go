package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// MaxListed caps the tasks the index page lists (the newest first); the
// JSON API lists all.
const MaxListed = 500

var funcs = template.FuncMap{
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.Local().Format("15:04:05.000")
	},
	"stamp": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"since": formatOffset,
	"short": func(id string) string {
		if len(id) > 13 {
			return "…" + id[len(id)-12:]
		}
		return id
	},
	"lower": func(s states.State) string { return strings.ToLower(string(s)) },
	"dash": func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	},
}

// formatOffset shows a duration since the task's creation: "+850ms",
// "+12.4s", "+3m05s".
func formatOffset(d time.Duration) string {
	switch {
	case d < 0:
		return "−" + formatOffset(-d)[1:]
	case d < time.Second:
		return fmt.Sprintf("+%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("+%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("+%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("+%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func parsePages() map[string]*template.Template {
	pages := map[string]*template.Template{}
	for _, name := range []string{"index.html", "task.html"} {
		pages[name] = template.Must(template.New(name).Funcs(funcs).
			ParseFS(templateFS, "templates/layout.html", "templates/"+name))
	}
	return pages
}

// render executes a page into a buffer first, so that an error never
// leaves half a page.
func (s *server) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.fail(w, r, fmt.Errorf("dashboard: render %s: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = buf.WriteTo(w)
}

// stateCard is one state's count on the index page.
type stateCard struct {
	State    states.State
	Count    int
	Selected bool
	Settled  bool
}

type indexPage struct {
	Title     string
	Summary   Summary
	Cards     []stateCard
	State     states.State
	Query     string
	Tasks     []Task
	Matching  int
	Limited   bool
	HasEngine bool
	Released  string
	States    []states.State
	// Breaker is "open", "closed", or "none" without an engine.
	Breaker string
	// Parked counts NeedsAccountFix tasks; CanRelease enables the button.
	Parked     int
	CanRelease bool
}

// pageIndex: GET /?state=S&q=text, the counts per state, the breaker and
// the task list, newest first.
func (s *server) pageIndex(w http.ResponseWriter, r *http.Request) {
	sum, err := s.summary(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := indexPage{Title: "tasks", Summary: sum, HasEngine: s.eng != nil, States: states.All(),
		Query: strings.TrimSpace(r.URL.Query().Get("q")), Released: r.URL.Query().Get("released")}
	p.Parked = sum.Counts[states.NeedsAccountFix]
	switch {
	case sum.BreakerOpen == nil:
		p.Breaker = "none"
	case *sum.BreakerOpen:
		p.Breaker = "open"
	default:
		p.Breaker = "closed"
	}
	p.CanRelease = p.Parked > 0 || p.Breaker == "open"
	if _, err := strconv.Atoi(p.Released); err != nil {
		p.Released = ""
	}
	var opts persist.ListOptions
	if v := r.URL.Query().Get("state"); v != "" {
		st, err := states.Parse(v)
		if err != nil {
			s.fail(w, r, badRequest("state %q: not a state", v))
			return
		}
		p.State = st
		opts.States = []states.State{st}
	}
	for _, st := range states.All() {
		p.Cards = append(p.Cards, stateCard{State: st, Count: sum.Counts[st], Selected: st == p.State,
			Settled: st.Settled()})
	}
	// Newest first, read as the store pages them: without a search the
	// counts say how many match and MaxListed tasks are read; a search
	// reads every task of the state, one page at a time, to count.
	needle := strings.ToLower(p.Query)
	opts.Reverse = true
	if needle == "" {
		opts.Limit = MaxListed
		if p.State != "" {
			p.Matching = sum.Counts[p.State]
		} else {
			p.Matching = sum.Total
		}
	}
	err = s.store.Scan(r.Context(), opts, func(t *persist.Task) error {
		if needle != "" {
			if !matches(t, needle) {
				return nil
			}
			p.Matching++
		}
		if len(p.Tasks) < MaxListed {
			p.Tasks = append(p.Tasks, engine.ViewOf(t))
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The counts were read a moment before the list.
	p.Matching = max(p.Matching, len(p.Tasks))
	p.Limited = p.Matching > len(p.Tasks)
	s.render(w, r, "index.html", p)
}

// matches reports whether the task's id, ref, method or code holds needle.
func matches(t *persist.Task, needle string) bool {
	for _, f := range []string{t.ID, t.Ref, t.Method, t.Code} {
		if strings.Contains(strings.ToLower(f), needle) {
			return true
		}
	}
	return false
}

// step is one line of a task's timeline: a transition, or a run of the
// same self-transition (a task polled thirty times is one line, ×30).
type step struct {
	First, Last     Record
	Count           int
	Offset          time.Duration // since the first record
	Span            time.Duration // from First to Last
	Meaning         string        // the code's meaning, from the catalogue
	Class           string
	Charged         bool
	InFlight        bool // the history ends with the intent to submit: possibly charged
	Settles, Fails  bool
	Items           []Record
	FromStart, Loop bool
}

type taskPage struct {
	Title     string
	Task      Task
	ParamKeys []string
	Steps     []step
	Charged   int
	Diagram   template.HTML
	Mermaid   string
	HasEngine bool
	Breaker   *bool
}

// pageTask: GET /tasks/{id}, the task, its timeline and the state diagram
// with its current state highlighted.
func (s *server) pageTask(w http.ResponseWriter, r *http.Request) {
	t, hist, err := s.findWithHistory(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	task := engine.ViewOf(t)
	p := taskPage{Title: "task " + t.ID, Task: task, ParamKeys: sortedKeys(task.Params),
		Steps: timeline(hist, t.State), Diagram: diagramSVG(t.State, hist), Mermaid: fsm.MermaidHighlight(t.State),
		HasEngine: s.eng != nil}
	if s.eng != nil {
		open := s.eng.BreakerOpen()
		p.Breaker = &open
	}
	for _, st := range p.Steps {
		if st.Charged || st.InFlight {
			p.Charged++
		}
	}
	s.render(w, r, "task.html", p)
}

// timeline groups a history into steps.
func timeline(hist []persist.Record, current states.State) []step {
	var out []step
	if len(hist) == 0 {
		return out
	}
	start := hist[0].At
	for i, r := range hist {
		rec := engine.RecordViewOf(r)
		if n := len(out); n > 0 {
			prev := &out[n-1]
			if groupable(prev.Last, rec) {
				prev.Last = rec
				prev.Count++
				prev.Span = rec.At.Sub(prev.First.At)
				prev.Items = append(prev.Items, rec)
				continue
			}
		}
		st := step{First: rec, Last: rec, Count: 1, Offset: r.At.Sub(start), Charged: r.PossiblyCharged,
			Items: []Record{rec}, FromStart: r.From == "", Loop: r.From == r.To,
			Settles: r.To.Settled(), Fails: r.To == states.Failed}
		if r.Code != "" {
			if e, ok := transitions.Lookup(r.Code); ok {
				st.Meaning, st.Class = e.Meaning, string(e.Class)
			} else if transitions.IsCode(r.Code) {
				st.Class = string(transitions.ClassUnknown)
			}
		}
		if i == len(hist)-1 && transitions.InDoubt(r.Event) && !current.Settled() {
			st.InFlight = true
		}
		out = append(out, st)
	}
	return out
}

// groupable reports whether next repeats prev: the same self-transition
// with the same code, neither possibly charged.
func groupable(prev, next Record) bool {
	return prev.From == prev.To && next.From == next.To && prev.To == next.To &&
		prev.Event == next.Event && prev.Code == next.Code &&
		!prev.PossiblyCharged && !next.PossiblyCharged &&
		next.Event != string(transitions.SubmitSending)
}

// formAccountFixed: POST /account-fixed from the index page's button;
// redirects back with the number released.
func (s *server) formAccountFixed(w http.ResponseWriter, r *http.Request) {
	n, err := s.accountFixed(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("account fixed from the dashboard", "released", n)
	http.Redirect(w, r, "/?released="+strconv.Itoa(n), http.StatusSeeOther)
}
