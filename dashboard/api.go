package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/internal/jsonstream"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
)

// MaxSubmitBody caps the body of POST /api/tasks (an image in base64).
const MaxSubmitBody = 16 << 20

// Task is a task as the JSON API returns it: engine.Task, the shape of
// `captchafsm list --json`. Params are filled by GET /api/tasks/{id} and the
// history only, redacted.
type Task = engine.Task

// Record is one transition as the JSON API returns it: engine.RecordView,
// the shape of `captchafsm history --json`.
type Record = engine.RecordView

// History is GET /api/tasks/{id}/history's answer.
type History struct {
	Task    Task     `json:"task"`
	History []Record `json:"history"`
}

// Summary is GET /api/summary's answer.
type Summary struct {
	// Counts holds every state, zero or not.
	Counts map[states.State]int `json:"counts"`
	Total  int                  `json:"total"`
	// BreakerOpen is null when no engine runs in this process.
	BreakerOpen *bool `json:"breaker_open"`
}

// SubmitResult is POST /api/tasks's answer: 201 with Added when the task is
// new, 200 when a task with the same ref existed.
type SubmitResult struct {
	ID    string `json:"id"`
	Added bool   `json:"added"`
}

// AccountFixedResult is POST /api/account-fixed's answer.
type AccountFixedResult struct {
	Released int `json:"released"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// fail answers err with the status its kind calls for.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, persist.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, provider.ErrInvalid), errors.Is(err, errBadRequest):
		status = http.StatusBadRequest
	case errors.Is(err, persist.ErrDuplicateRef):
		status = http.StatusConflict
	case errors.Is(err, engine.ErrClosed), errors.Is(err, persist.ErrClosed), errors.Is(err, errReadOnly):
		status = http.StatusServiceUnavailable
	case errors.Is(err, r.Context().Err()) && r.Context().Err() != nil:
		return // the client went away
	}
	if status == http.StatusInternalServerError {
		s.log.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeProblem(w, r, status, err.Error())
}

var (
	errBadRequest = errors.New("dashboard: bad request")
	errReadOnly   = errors.New("dashboard: read-only: no engine runs in this process")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// listOptions reads ?state=, ?limit=, ?after= and ?order=.
func listOptions(r *http.Request) (persist.ListOptions, error) {
	var opts persist.ListOptions
	q := r.URL.Query()
	opts.After = q.Get("after")
	switch o := q.Get("order"); o {
	case "", "oldest":
	case "newest":
		opts.Reverse = true
	default:
		return opts, badRequest("order %q: want oldest or newest", o)
	}
	if v := q.Get("state"); v != "" {
		st, err := states.Parse(v)
		if err != nil {
			return opts, badRequest("state %q: not a state", v)
		}
		opts.States = []states.State{st}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return opts, badRequest("limit %q: want a number ≥ 0", v)
		}
		opts.Limit = n
	}
	return opts, nil
}

// apiList: GET /api/tasks?state=S&limit=N&after=ID&order=newest, tasks in
// creation order (newest first with order=newest), after the task ID when
// given: a page's last id asks for the next page. The array is written as
// the store reads it, so any number of tasks lists in flat memory. A read
// that fails before the first task is an error answer; one that fails
// later cuts the array short (the body is then not valid JSON) and is
// logged.
func (s *server) apiList(w http.ResponseWriter, r *http.Request) {
	opts, err := listOptions(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var out *bufio.Writer
	arr := &jsonstream.Array{}
	err = s.store.Scan(r.Context(), opts, func(t *persist.Task) error {
		if out == nil {
			out = startJSON(w)
			arr.W = out
		}
		return arr.Add(engine.ViewOf(t))
	})
	switch {
	case err != nil && out == nil:
		s.fail(w, r, err)
		return
	case err != nil:
		if r.Context().Err() == nil {
			s.log.Error("dashboard: task list cut short", "path", r.URL.Path, "err", err)
		}
		_ = out.Flush()
		return
	case out == nil:
		out = startJSON(w)
		arr.W = out
	}
	_ = arr.Close()
	_ = out.Flush()
}

// startJSON sends a 200 JSON answer's header and returns a buffered
// writer for its body.
func startJSON(w http.ResponseWriter) *bufio.Writer {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return bufio.NewWriterSize(w, 32<<10)
}

// MaxWait caps GET /api/tasks/{id}?wait=.
const MaxWait = time.Minute

// apiGet: GET /api/tasks/{id}[?wait=30s], the task with its redacted
// params. The id may also be the task's ref. With wait, the answer waits
// (at most MaxWait) until the engine is done with the task: terminal, or
// parked in NeedsAccountFix.
func (s *server) apiGet(w http.ResponseWriter, r *http.Request) {
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			s.fail(w, r, badRequest("wait %q: want a duration such as 30s", v))
			return
		}
		wait = min(d, MaxWait)
	}
	t, err := s.find(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if wait > 0 && s.eng != nil && !t.State.Settled() {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		_, _ = s.eng.Wait(ctx, t.ID) // a timeout or a failed task: the task says which
		cancel()
		if t, err = s.store.Get(r.Context(), t.ID); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, engine.ViewOf(t))
}

// apiHistory: GET /api/tasks/{id}/history.
func (s *server) apiHistory(w http.ResponseWriter, r *http.Request) {
	t, hist, err := s.findWithHistory(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := History{Task: engine.ViewOf(t), History: make([]Record, 0, len(hist))}
	for _, rec := range hist {
		out.History = append(out.History, engine.RecordViewOf(rec))
	}
	writeJSON(w, http.StatusOK, out)
}

// find looks the path's {id} up as an id, then as a ref.
func (s *server) find(r *http.Request) (*persist.Task, error) {
	key := r.PathValue("id")
	t, err := persist.Find(r.Context(), s.store, key)
	if errors.Is(err, persist.ErrNotFound) {
		return nil, fmt.Errorf("dashboard: task %q: %w", key, persist.ErrNotFound)
	}
	return t, err
}

// findWithHistory is find with the task's history.
func (s *server) findWithHistory(r *http.Request) (*persist.Task, []persist.Record, error) {
	t, err := s.find(r)
	if err != nil {
		return nil, nil, err
	}
	hist, err := s.store.History(r.Context(), t.ID)
	if err != nil {
		return nil, nil, err
	}
	return t, hist, nil
}

// summary counts the tasks per state and reads the breaker.
func (s *server) summary(r *http.Request) (Summary, error) {
	counts, err := s.store.Count(r.Context())
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Counts: map[states.State]int{}}
	for _, st := range states.All() {
		sum.Counts[st] = counts[st]
		sum.Total += counts[st]
	}
	if s.eng != nil {
		open := s.eng.BreakerOpen()
		sum.BreakerOpen = &open
	}
	return sum, nil
}

// apiSummary: GET /api/summary.
func (s *server) apiSummary(w http.ResponseWriter, r *http.Request) {
	sum, err := s.summary(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

// apiSubmit: POST /api/tasks with {"method","params","ref"}, as a line of
// `captchafsm run --from`.
func (s *server) apiSubmit(w http.ResponseWriter, r *http.Request) {
	// A JSON content type also keeps HTML forms of other sites out: they
	// cannot send one without a CORS preflight, which is never granted.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "dashboard: Content-Type must be application/json")
		return
	}
	if s.eng == nil {
		s.fail(w, r, errReadOnly)
		return
	}
	var req engine.Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxSubmitBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("dashboard: body larger than %d bytes", MaxSubmitBody))
			return
		}
		s.fail(w, r, badRequest("body: %v (want {\"method\": ..., \"params\": {...}, \"ref\": ...})", err))
		return
	}
	if dec.More() {
		s.fail(w, r, badRequest("body: one JSON object expected"))
		return
	}
	ids, added, err := s.eng.SubmitMany(r.Context(), []engine.Request{req})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if added > 0 {
		status = http.StatusCreated
		w.Header().Set("Location", "/api/tasks/"+ids[0])
	}
	writeJSON(w, status, SubmitResult{ID: ids[0], Added: added > 0})
}

// accountFixed closes the breaker and releases parked tasks, through the
// engine when one runs, else in the store for the next engine.
func (s *server) accountFixed(r *http.Request) (int, error) {
	if s.eng != nil {
		return s.eng.AccountFixed(r.Context())
	}
	return engine.ReleaseAccountFix(r.Context(), s.store)
}

// apiAccountFixed: POST /api/account-fixed.
func (s *server) apiAccountFixed(w http.ResponseWriter, r *http.Request) {
	n, err := s.accountFixed(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("account fixed from the dashboard", "released", n)
	writeJSON(w, http.StatusOK, AccountFixedResult{Released: n})
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
