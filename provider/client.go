package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/captchafsm/captchafsm/transitions"
)

// The endpoints, as they appear in errors.
const (
	EndpointIn  = "in.php"
	EndpointRes = "res.php"
)

// Defaults of Config's zero values.
const (
	DefaultTimeout = 30 * time.Second
	DefaultMaxBody = 64 << 10
)

// Config configures a Client. Its zero value is not usable (BaseURL and Key
// are required); every other zero field means its default.
type Config struct {
	// BaseURL is the API's root, e.g. DefaultBaseURL (CaptchaAI); in.php
	// and res.php live under it. Required: an absolute http(s) URL without
	// credentials, query or fragment.
	BaseURL string
	// Key is the API key: 32 hexadecimal characters. It is never printed:
	// Config's String and GoString hide it.
	Key string
	// HTTPClient sends the requests. Nil means a client of our own that
	// follows no redirects (a redirect is a *TransportError); a given client
	// is used as it is, never modified.
	HTTPClient *http.Client
	// Timeout bounds each request, from sending to reading the whole answer.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// SoftID is sent as soft_id with every submit whose Params lack one.
	// Optional; digits only.
	SoftID string
	// MaxBody is the largest answer read, in bytes; a longer one is a
	// *TransportError. Zero means DefaultMaxBody.
	MaxBody int64
}

// String describes the configuration with the key hidden.
func (c Config) String() string {
	key := ""
	if c.Key != "" {
		key = "***"
	}
	return fmt.Sprintf("{BaseURL:%s Key:%s Timeout:%s SoftID:%s MaxBody:%d}", c.BaseURL, key, c.Timeout, c.SoftID, c.MaxBody)
}

// GoString is String: %#v must not print the key either.
func (c Config) GoString() string { return "provider.Config" + c.String() }

// Client sends one request per call to in.php or res.php and classifies the
// answer. It never retries: deciding what to do with an error is the
// engine's job. A Client is safe for concurrent use.
type Client struct {
	inURL, resURL string
	key           string
	softID        string
	hc            *http.Client
	timeout       time.Duration
	maxBody       int64
}

// String describes the client without its key.
func (c *Client) String() string { return "provider.Client{" + c.inURL + ", " + c.resURL + "}" }

// GoString is String: %#v must not print the key either.
func (c *Client) GoString() string { return c.String() }

// New checks cfg and returns a Client. Errors are *FieldError values naming
// the field ("provider: key: must be 32 hex characters") and wrap ErrInvalid.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, fieldErr("base_url", "is required")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fieldErr("base_url", "must be an absolute http(s) URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fieldErr("base_url", "must have no credentials, query or fragment")
	}
	if err := ValidateKey(cfg.Key); err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, fieldErr("timeout", "must not be negative")
	}
	if cfg.MaxBody < 0 {
		return nil, fieldErr("max_body", "must not be negative")
	}
	if cfg.SoftID != "" && !isDigits(cfg.SoftID) {
		return nil, fieldErr("soft_id", "must be a number")
	}
	c := &Client{
		inURL:   u.JoinPath(EndpointIn).String(),
		resURL:  u.JoinPath(EndpointRes).String(),
		key:     cfg.Key,
		softID:  cfg.SoftID,
		hc:      cfg.HTTPClient,
		timeout: cfg.Timeout,
		maxBody: cfg.MaxBody,
	}
	if c.hc == nil {
		c.hc = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// A redirect would carry res.php's query, and the key in it,
			// to wherever the server points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBody == 0 {
		c.maxBody = DefaultMaxBody
	}
	return c, nil
}

// Request is one task to submit: a method and its parameters, as the API
// names them. Params never hold the key.
type Request struct {
	// Method is the API's method: "post", "base64", "userrecaptcha", ...
	Method string
	// Params are the method's parameters. For post and base64 the image is
	// Params["body"], base64-encoded.
	Params map[string]string
}

// Answer is the outcome of one task of a poll: Token when the task is
// solved (Code and Class empty), else Code (CAPCHA_NOT_READY,
// ERROR_CAPTCHA_UNSOLVABLE, ...) and its Class; a code the catalogue does
// not know keeps its text with transitions.ClassUnknown.
type Answer struct {
	Token string
	Code  string
	Class transitions.Class
}

// Submit sends the task to in.php (POST, json=1) and returns the provider's
// task id. The request is checked with Validate first; a bad one is a
// *FieldError and nothing is sent. The post method is sent as a multipart
// upload of the file "file", base64 as the form field body.
//
// Errors: *APIError for an answer with a code (its Class says what to do),
// *TransportError for no answer (PossiblyCharged when the request may have
// reached the server).
func (c *Client) Submit(ctx context.Context, req Request) (providerID string, err error) {
	if err := Validate(req); err != nil {
		return "", err
	}
	newReq, err := c.submitRequest(req)
	if err != nil {
		return "", err
	}
	a, err := c.roundTrip(ctx, EndpointIn, true, newReq)
	if err != nil {
		return "", err
	}
	if a.status == 0 {
		return "", c.apiError(EndpointIn, a)
	}
	id := strings.TrimSpace(a.request)
	if !isID(id) {
		return "", &TransportError{Endpoint: EndpointIn, PossiblyCharged: true,
			Err: malformed("in.php answered OK without a valid task id")}
	}
	return id, nil
}

// submitRequest builds the body once; the returned function makes a fresh
// request from it for a context.
func (c *Client) submitRequest(req Request) (func(context.Context) (*http.Request, error), error) {
	fields := url.Values{}
	fields.Set("key", c.key)
	fields.Set("method", req.Method)
	fields.Set("json", "1")
	if c.softID != "" {
		fields.Set("soft_id", c.softID)
	}
	for k, v := range req.Params {
		fields.Set(k, v)
	}
	var body []byte
	var contentType string
	switch req.Method {
	case "post":
		data, ext, err := decodeImage(req.Params)
		if err != nil {
			return nil, err
		}
		fields.Del("body")
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := mw.WriteField(k, fields.Get(k)); err != nil {
				return nil, fmt.Errorf("provider: build multipart: %w", err)
			}
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="captcha.`+ext+`"`)
		h.Set("Content-Type", mimeOf(ext))
		part, err := mw.CreatePart(h)
		if err != nil {
			return nil, fmt.Errorf("provider: build multipart: %w", err)
		}
		if _, err := part.Write(data); err != nil {
			return nil, fmt.Errorf("provider: build multipart: %w", err)
		}
		if err := mw.Close(); err != nil {
			return nil, fmt.Errorf("provider: build multipart: %w", err)
		}
		body, contentType = buf.Bytes(), mw.FormDataContentType()
	case "base64":
		if _, _, err := decodeImage(req.Params); err != nil {
			return nil, err
		}
		fields.Set("body", strings.Join(strings.Fields(req.Params["body"]), ""))
		body, contentType = []byte(fields.Encode()), "application/x-www-form-urlencoded"
	default:
		body, contentType = []byte(fields.Encode()), "application/x-www-form-urlencoded"
	}
	return func(ctx context.Context) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.inURL, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("provider: in.php: build request: %w", err)
		}
		r.Header.Set("Content-Type", contentType)
		return r, nil
	}, nil
}

func mimeOf(ext string) string {
	if ext == "jpg" {
		return "image/jpeg"
	}
	return "image/" + ext
}

// isID reports whether s can be a provider task id: the API's ids are
// numbers, but any short word of letters, digits, '-' and '_' is accepted.
func isID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func checkID(field, id string) error {
	if !isID(id) {
		return fieldErr(field, "must be a task id (letters, digits, '-' or '_', at most 64)")
	}
	return nil
}

// Poll asks res.php for the answers of ids: one id is sent as
// action=get&id=, several as action=get&ids=a,b,c, whose answer is split in
// the order of ids. ids must hold 1 to MaxBatch valid ids (else a
// *FieldError, nothing sent).
//
// The answers are per task: a token, or a task's code (CAPCHA_NOT_READY,
// ERROR_CAPTCHA_UNSOLVABLE, ERROR_WRONG_CAPTCHA_ID, an unknown code).
// Codes about the request rather than a task — a wrong or unknown key,
// ERROR_EMPTY_ACTION, an account, transient or ban code — and a batch
// answered by a single code are returned as an *APIError for the whole
// request; no answer at all is a *TransportError.
func (c *Client) Poll(ctx context.Context, ids []string) ([]Answer, error) {
	if len(ids) == 0 {
		return nil, fieldErr("ids", "at least one id is required")
	}
	if len(ids) > MaxBatch {
		return nil, fieldErr("ids", "at most %d ids per poll", MaxBatch)
	}
	for _, id := range ids {
		if err := checkID("ids", id); err != nil {
			return nil, err
		}
	}
	q := url.Values{"action": {"get"}}
	if len(ids) == 1 {
		q.Set("id", ids[0])
	} else {
		q.Set("ids", strings.Join(ids, ","))
	}
	a, err := c.get(ctx, q)
	if err != nil {
		return nil, err
	}
	if len(ids) == 1 {
		if a.status == 1 {
			tok := strings.TrimSpace(a.request)
			if tok == "" {
				return nil, &TransportError{Endpoint: EndpointRes, Err: malformed("OK without an answer")}
			}
			return []Answer{{Token: tok}}, nil
		}
		if requestLevel(a.request) {
			return nil, c.apiError(EndpointRes, a)
		}
		return []Answer{c.answerOf(a.request)}, nil
	}
	if !strings.Contains(a.request, "|") {
		if a.status == 0 || isCodeText(a.request) {
			return nil, c.apiError(EndpointRes, a)
		}
	}
	out, err := ParseBatch(a.request, len(ids))
	if err != nil {
		return nil, &TransportError{Endpoint: EndpointRes, Err: err}
	}
	for i := range out {
		out[i].Code = c.scrub(out[i].Code)
	}
	return out, nil
}

func (c *Client) answerOf(code string) Answer {
	a := answerOf(strings.TrimSpace(code))
	if a.Token != "" {
		// status 0 always carries a code, whatever it looks like.
		a = Answer{Code: a.Token, Class: transitions.Classify(a.Token)}
	}
	a.Code = c.scrub(a.Code)
	return a
}

// requestLevel reports whether a res.php code concerns the request (the
// key, the account, the rate) rather than the polled task.
func requestLevel(code string) bool {
	e, ok := transitions.Lookup(code)
	if !ok {
		return false
	}
	if e.IsBan() || e.Class == transitions.ClassAccount || e.Class == transitions.ClassTransient {
		return true
	}
	switch e.Code {
	case "ERROR_WRONG_USER_KEY", "ERROR_KEY_DOES_NOT_EXIST", "ERROR_EMPTY_ACTION":
		return true
	}
	return false
}

// Cost asks res.php for a solved task's token and price (action=get2,
// answered "OK|token|cost" or JSON with a price). A task that is not solved
// yet is an *APIError with code CAPCHA_NOT_READY.
func (c *Client) Cost(ctx context.Context, id string) (token string, cost string, err error) {
	if err := checkID("id", id); err != nil {
		return "", "", err
	}
	a, err := c.get(ctx, url.Values{"action": {"get2"}, "id": {id}})
	if err != nil {
		return "", "", err
	}
	if a.status == 0 {
		return "", "", c.apiError(EndpointRes, a)
	}
	token, cost = a.request, a.price
	if cost == "" {
		i := strings.LastIndexByte(a.request, '|')
		if i < 0 {
			return "", "", &TransportError{Endpoint: EndpointRes, Err: malformed("get2 answer without a cost")}
		}
		token, cost = a.request[:i], a.request[i+1:]
	}
	token, cost = strings.TrimSpace(token), strings.TrimSpace(cost)
	if _, err := strconv.ParseFloat(cost, 64); err != nil || token == "" {
		return "", "", &TransportError{Endpoint: EndpointRes, Err: malformed("get2 answer is not token|cost")}
	}
	return token, cost, nil
}

// Balance asks res.php for the account's balance (action=getbalance), as
// the provider wrote the number.
func (c *Client) Balance(ctx context.Context) (string, error) {
	a, err := c.get(ctx, url.Values{"action": {"getbalance"}})
	if err != nil {
		return "", err
	}
	if a.status == 0 {
		return "", c.apiError(EndpointRes, a)
	}
	b := strings.TrimSpace(a.request)
	if _, err := strconv.ParseFloat(b, 64); err != nil {
		return "", &TransportError{Endpoint: EndpointRes, Err: malformed("balance is not a number")}
	}
	return b, nil
}

// Report tells res.php whether a solved task's answer was right
// (action=reportgood) or wrong (action=reportbad).
func (c *Client) Report(ctx context.Context, id string, good bool) error {
	if err := checkID("id", id); err != nil {
		return err
	}
	action := "reportbad"
	if good {
		action = "reportgood"
	}
	a, err := c.get(ctx, url.Values{"action": {action}, "id": {id}})
	if err != nil {
		return err
	}
	if a.status == 0 {
		return c.apiError(EndpointRes, a)
	}
	return nil
}

// get sends a GET to res.php with q plus the key and json=1.
func (c *Client) get(ctx context.Context, q url.Values) (answer, error) {
	q.Set("key", c.key)
	q.Set("json", "1")
	raw := q.Encode()
	return c.roundTrip(ctx, EndpointRes, false, func(ctx context.Context) (*http.Request, error) {
		// The query is set after parsing so that no error can quote it.
		r, err := http.NewRequestWithContext(ctx, http.MethodGet, c.resURL, nil)
		if err != nil {
			return nil, fmt.Errorf("provider: res.php: build request: %w", err)
		}
		r.URL.RawQuery = raw
		return r, nil
	})
}

func (c *Client) apiError(endpoint string, a answer) error {
	code := strings.TrimSpace(a.request)
	return &APIError{Endpoint: endpoint, Code: c.scrub(code), Class: transitions.Classify(code),
		ErrorText: RedactText(c.scrub(a.errorText))}
}

// scrub hides the key, in any letter case, in text that may quote it.
func (c *Client) scrub(s string) string {
	n := len(c.key)
	if n == 0 || len(s) < n {
		return s
	}
	var b strings.Builder
	found := false
	i := 0
	for i <= len(s)-n {
		if equalFoldASCII(s[i:i+n], c.key) {
			if !found {
				b.Grow(len(s))
				found = true
			}
			b.WriteString("***")
			i += n
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	if !found {
		return s
	}
	b.WriteString(s[i:])
	return b.String()
}

func equalFoldASCII(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// roundTrip sends one request under the per-request timeout and reads and
// parses the answer. charge marks a submit: failures after the request was
// written are then PossiblyCharged.
func (c *Client) roundTrip(ctx context.Context, endpoint string, charge bool, newReq func(context.Context) (*http.Request, error)) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{
		WroteHeaders: func() { wrote.Store(true) },
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	}
	req, err := newReq(httptrace.WithClientTrace(ctx, trace))
	if err != nil {
		return answer{}, c.transport(ctx, endpoint, 0, false, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, c.transport(ctx, endpoint, 0, charge && wrote.Load(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answer{}, c.transport(ctx, endpoint, resp.StatusCode, charge, nil)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return answer{}, c.transport(ctx, endpoint, 0, charge, fmt.Errorf("read answer: %w", err))
	}
	if int64(len(body)) > c.maxBody {
		return answer{}, c.transport(ctx, endpoint, 0, charge, malformed("answer larger than %d bytes", c.maxBody))
	}
	a, err := parseAnswer(body)
	if err != nil {
		return answer{}, c.transport(ctx, endpoint, 0, charge, err)
	}
	return a, nil
}

// transport builds a *TransportError whose text cannot hold the key: a
// *url.Error is rebuilt with the endpoint's URL (no query), and any other
// text that quotes the key has it replaced.
func (c *Client) transport(ctx context.Context, endpoint string, status int, charged bool, err error) error {
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			u := c.inURL
			if endpoint == EndpointRes {
				u = c.resURL
			}
			err = &url.Error{Op: ue.Op, URL: u, Err: ue.Err}
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timeout after %s: %w", c.timeout, err)
		}
		if msg := err.Error(); c.scrub(msg) != msg {
			err = &redactedError{msg: c.scrub(msg), err: err}
		}
	}
	return &TransportError{Endpoint: endpoint, Status: status, PossiblyCharged: charged, Err: err}
}
