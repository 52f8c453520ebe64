package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// DefaultMaxBatch bounds the ids of one action=get&ids= request when
// Options.MaxBatch is zero.
const DefaultMaxBatch = 1000

// Options configure a Handler. The zero value (or nil) means the defaults.
type Options struct {
	// MaxBody bounds a request's body; 0 means DefaultMaxBody.
	MaxBody int64
	// MaxBatch bounds the ids of one batched poll; more is
	// ERROR_BAD_PARAMETERS. 0 means DefaultMaxBatch.
	MaxBatch int
}

// Handler serves in.php and res.php (under any path prefix) for a
// Backend: it parses each request (Parse), answers CORS preflights,
// checks keys and tasks, calls the Backend and renders its answers as
// plain text or, with json=1, as JSON. It is an http.Handler; Parse and
// Serve are its two halves, for a server that acts between them (the
// simulator draws its faults there).
type Handler struct {
	b        Backend
	maxBody  int64
	maxBatch int
}

// NewHandler returns a Handler for b.
func NewHandler(b Backend, opts *Options) *Handler {
	h := &Handler{b: b, maxBody: DefaultMaxBody, maxBatch: DefaultMaxBatch}
	if opts != nil {
		if opts.MaxBody > 0 {
			h.maxBody = opts.MaxBody
		}
		if opts.MaxBatch > 0 {
			h.maxBatch = opts.MaxBatch
		}
	}
	return h
}

// Reply is a decided HTTP answer.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
	// Codes are the codes answered: "OK" for an id, a token, a balance or a
	// pingback change, "OK_REPORT_RECORDED", or the error code; one per id
	// of a batched poll. Nil for answers that are not API answers (404,
	// 405, a CORS preflight).
	Codes []string
}

// Write sends the reply.
func (rep Reply) Write(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range rep.Header {
		h[k] = v
	}
	h.Set("Content-Length", strconv.Itoa(len(rep.Body)))
	w.WriteHeader(rep.Status)
	_, _ = w.Write(rep.Body)
}

// ServeHTTP parses, serves and writes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, rep := h.Parse(r)
	if rep == nil {
		rep = new(h.Serve(r.Context(), req))
	}
	rep.Write(w)
}

// Parse reads r. For an API request it returns the Request and a nil
// Reply; for anything else — a path other than in.php or res.php (404),
// a CORS preflight (204 with the CORS headers: the preflight of a JSON
// POST carries no header_acao, so every preflight is answered), an HTTP
// method other than GET, POST and OPTIONS (405) — the Reply to send.
func (h *Handler) Parse(r *http.Request) (*Request, *Reply) {
	var endpoint string
	switch {
	case strings.HasSuffix(r.URL.Path, "/"+EndpointIn):
		endpoint = EndpointIn
	case strings.HasSuffix(r.URL.Path, "/"+EndpointRes):
		endpoint = EndpointRes
	default:
		return nil, &Reply{Status: http.StatusNotFound, Header: textHeader(), Body: []byte("404 page not found\n")}
	}
	switch r.Method {
	case http.MethodGet, http.MethodPost:
	case http.MethodOptions:
		hd := http.Header{}
		hd.Set("Access-Control-Allow-Origin", "*")
		hd.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		allow := r.Header.Get("Access-Control-Request-Headers")
		if allow == "" || !printableASCII(allow) {
			allow = "Content-Type"
		}
		hd.Set("Access-Control-Allow-Headers", allow)
		hd.Set("Access-Control-Max-Age", "86400")
		return nil, &Reply{Status: http.StatusNoContent, Header: hd}
	default:
		hd := textHeader()
		hd.Set("Allow", "GET, POST, OPTIONS")
		return nil, &Reply{Status: http.StatusMethodNotAllowed, Header: hd, Body: []byte("405 method not allowed\n")}
	}
	return Parse(r, endpoint, h.maxBody), nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return len(s) <= 256
}

func textHeader() http.Header {
	return http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
}

// Serve answers a parsed request: Admit, then the request's own errors
// (its body, its key's format), then Authenticate, then the endpoint.
func (h *Handler) Serve(ctx context.Context, r *Request) Reply {
	if err := h.b.Admit(ctx, r); err != nil {
		return h.fail(r, err)
	}
	if r.Err != nil {
		return h.fail(r, r.Err)
	}
	if !wellFormedKey(r.Key) {
		return h.fail(r, Errorf("ERROR_WRONG_USER_KEY", "key must be 32 hex characters"))
	}
	client, err := h.b.Authenticate(ctx, r)
	if err != nil {
		return h.fail(r, err)
	}
	r.Client = client
	if r.Endpoint == EndpointIn {
		return h.submit(ctx, r)
	}
	switch r.Action {
	case "get":
		return h.get(ctx, r)
	case "get2":
		return h.get2(ctx, r)
	case "getbalance":
		b, err := h.b.Balance(ctx, r)
		if err != nil {
			return h.fail(r, err)
		}
		return h.ok(r, b, b, nil)
	case "reportgood", "reportbad":
		id, ok := ParseID(r.Form.Get("id"))
		if !ok {
			return h.fail(r, Errorf("ERROR_WRONG_ID_FORMAT", "id must be the number in.php returned"))
		}
		if err := h.b.Report(ctx, r, id, r.Action == "reportgood"); err != nil {
			return h.fail(r, err)
		}
		const rec = "OK_REPORT_RECORDED"
		return h.reply(r, answer{status: 1, plain: rec, request: rec}, []string{rec})
	case "add_pingback", "del_pingback":
		addr := strings.TrimSpace(r.Form.Get("addr"))
		if addr == "" {
			return h.fail(r, Errorf("ERROR_BAD_PARAMETERS", "addr is required: the pingback URL"))
		}
		if r.Action == "add_pingback" {
			err = h.b.AddPingback(ctx, r, addr)
		} else {
			err = h.b.DeletePingback(ctx, r, addr)
		}
		if err != nil {
			return h.fail(r, err)
		}
		return h.reply(r, answer{status: 1, plain: "OK", request: "OK"}, []string{"OK"})
	case "get_pingback":
		urls, err := h.b.Pingbacks(ctx, r)
		if err != nil {
			return h.fail(r, err)
		}
		sort.Strings(urls)
		if urls == nil {
			urls = []string{}
		}
		return h.reply(r, answer{status: 1, plain: strings.Join(append([]string{"OK"}, urls...), "|"), request: urls}, []string{"OK"})
	}
	// The provider answers an action it does not know as a missing one.
	return h.fail(r, Errorf("ERROR_EMPTY_ACTION", "action must be get, get2, getbalance, reportgood, reportbad, add_pingback, get_pingback or del_pingback"))
}

func (h *Handler) submit(ctx context.Context, r *Request) Reply {
	t, e := Check(r)
	if e != nil {
		return h.fail(r, e)
	}
	id, err := h.b.Submit(ctx, r, t)
	if err != nil {
		return h.fail(r, err)
	}
	s := strconv.FormatInt(id, 10)
	return h.ok(r, "OK|"+s, s, nil)
}

func (h *Handler) get(ctx context.Context, r *Request) Reply {
	raw, batch := r.Form.Get("ids"), true
	if raw == "" {
		raw, batch = r.Form.Get("id"), false
	}
	parts := strings.Split(raw, ",")
	if batch && len(parts) > h.maxBatch {
		return h.fail(r, Errorf("ERROR_BAD_PARAMETERS", "ids holds %d ids, at most %d", len(parts), h.maxBatch))
	}
	if !batch {
		id, ok := ParseID(raw)
		if !ok {
			return h.fail(r, Errorf("ERROR_WRONG_ID_FORMAT", "id must be the number in.php returned"))
		}
		res, err := h.results(ctx, r, []int64{id})
		if err != nil {
			return h.fail(r, err)
		}
		if res[0].Code != "" {
			return h.fail(r, &Error{Code: res[0].Code, Text: res[0].Text})
		}
		return h.ok(r, "OK|"+res[0].Token, jsonOr(res[0]), nil)
	}
	results := make([]Result, len(parts))
	var ids []int64
	var at []int
	for i, p := range parts {
		id, ok := ParseID(p)
		if !ok {
			results[i] = Result{Code: "ERROR_WRONG_ID_FORMAT"}
			continue
		}
		ids = append(ids, id)
		at = append(at, i)
	}
	if len(ids) > 0 {
		got, err := h.results(ctx, r, ids)
		if err != nil {
			return h.fail(r, err)
		}
		for j, i := range at {
			results[i] = got[j]
		}
	}
	texts := make([]string, len(results))
	codes := make([]string, len(results))
	for i, res := range results {
		switch {
		case res.Code != "":
			texts[i], codes[i] = res.Code, res.Code
		case r.JSON && res.JSON != nil:
			texts[i], codes[i] = string(res.JSON), "OK"
		default:
			texts[i], codes[i] = res.Token, "OK"
		}
	}
	joined := strings.Join(texts, "|")
	return h.reply(r, answer{status: 1, plain: joined, request: joined}, codes)
}

// results calls the Backend and checks it kept its side of the contract.
func (h *Handler) results(ctx context.Context, r *Request, ids []int64) ([]Result, error) {
	got, err := h.b.Results(ctx, r, ids)
	if err != nil {
		return nil, err
	}
	if len(got) != len(ids) {
		return nil, fmt.Errorf("protocol: backend answered %d results for %d ids", len(got), len(ids))
	}
	for _, res := range got {
		if res.Code == "" && res.Token == "" {
			return nil, errors.New("protocol: backend answered a result without a token or a code")
		}
	}
	return got, nil
}

func (h *Handler) get2(ctx context.Context, r *Request) Reply {
	id, ok := ParseID(r.Form.Get("id"))
	if !ok {
		return h.fail(r, Errorf("ERROR_WRONG_ID_FORMAT", "id must be the number in.php returned"))
	}
	res, err := h.b.Cost(ctx, r, id)
	if err != nil {
		return h.fail(r, err)
	}
	if res.Code != "" {
		return h.fail(r, &Error{Code: res.Code, Text: res.Text})
	}
	if res.Token == "" {
		return h.fail(r, errors.New("protocol: backend answered get2 without a token"))
	}
	return h.reply(r, answer{status: 1, plain: "OK|" + res.Token + "|" + res.Price, request: jsonOr(res), price: res.Price}, []string{"OK"})
}

// jsonOr is the JSON form of a result's answer, or its text.
func jsonOr(res Result) any {
	if res.JSON != nil {
		return res.JSON
	}
	return res.Token
}

// answer is an API answer before it is rendered.
type answer struct {
	status    int    // 1 or 0
	plain     string // the plain-text body
	request   any    // JSON "request": a string, a JSON value, a list
	price     string // JSON "price" (get2)
	errorText string // JSON "error_text" (status 0)
}

func (h *Handler) ok(r *Request, plain string, request any, codes []string) Reply {
	if codes == nil {
		codes = []string{"OK"}
	}
	return h.reply(r, answer{status: 1, plain: plain, request: request}, codes)
}

// fail answers an error: an *Error's code and text, anything else
// CodeInternal without its cause.
func (h *Handler) fail(r *Request, err error) Reply {
	var e *Error
	if !errors.As(err, &e) || e.Code == "" {
		e = &Error{Code: CodeInternal}
	}
	return h.reply(r, answer{status: 0, plain: e.Code, request: e.Code, errorText: e.Text}, []string{e.Code})
}

func (h *Handler) reply(r *Request, a answer, codes []string) Reply {
	hd := textHeader()
	body := []byte(a.plain)
	if r.JSON {
		hd.Set("Content-Type", "application/json")
		body = renderJSON(a)
	}
	if r.ACAO {
		hd.Set("Access-Control-Allow-Origin", "*")
	}
	return Reply{Status: http.StatusOK, Header: hd, Body: body, Codes: codes}
}

func renderJSON(a answer) []byte {
	v := struct {
		Status    int    `json:"status"`
		Request   any    `json:"request"`
		Price     string `json:"price,omitempty"`
		ErrorText string `json:"error_text,omitempty"`
	}{a.status, a.request, a.price, a.errorText}
	b, err := json.Marshal(v)
	if err != nil {
		// Only a backend's invalid Result.JSON can get here.
		b, _ = json.Marshal(struct {
			Status  int    `json:"status"`
			Request string `json:"request"`
		}{0, CodeInternal})
	}
	return b
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
