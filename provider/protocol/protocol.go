package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"net/url"
	"sort"
	"strings"

	"github.com/captchafsm/captchafsm/provider"
)

// The endpoints a Handler serves, under any path prefix.
const (
	EndpointIn  = "in.php"
	EndpointRes = "res.php"
)

// Request is one parsed API request. Parse builds it; the Handler fills
// Client once Authenticate has named the caller, then hands it to every
// Backend call.
type Request struct {
	// Endpoint is EndpointIn or EndpointRes.
	Endpoint string
	// Action is res.php's action ("get", "getbalance", ...); "" on in.php.
	Action string
	// Key is the key as sent.
	Key string
	// Addr is the caller's IP address (no port); "" when the request came
	// without one (an in-process transport).
	Addr string
	// Client is the name Authenticate gave the caller.
	Client string
	// JSON is json=1: answers are JSON objects.
	JSON bool
	// ACAO is header_acao=1: answers carry Access-Control-Allow-Origin: *.
	ACAO bool
	// Form holds every parameter, merged from the query, a urlencoded or
	// multipart body and a JSON body, later sources winning (see Parse).
	// File parts other than "file" are in it as base64.
	Form url.Values
	// File is the multipart part named "file" (method=post), nil if none.
	File []byte
	// Err is the code the request's body itself earned (an unreadable
	// upload, a body over the limit, JSON that is not an object); the
	// Handler answers it once Admit has seen the request.
	Err *Error
}

// Task is a submit that passed the protocol's checks (Check): what a
// Backend's Submit receives.
type Task struct {
	// Method is the API method; a text question sent without one is
	// "textcaptcha".
	Method string
	// Params are the task's parameters as the provider names them, without
	// key, method, json, header_acao and pingback. An image uploaded as a
	// multipart file is in Params["body"] as base64, as the base64 method
	// sends it, so that a Task can be forwarded as it is.
	Params map[string]string
	// Image is the decoded image of post and base64, nil otherwise.
	Image []byte
	// Pingback is the URL to call when the task ends, "" for none.
	Pingback string
}

// Fingerprint identifies a task's content: its method and parameters, the
// image's bytes rather than their encoding, nothing of the caller's key or
// answer format. The same captcha sent twice, in any of the request
// shapes Parse accepts, has the same fingerprint.
func (t Task) Fingerprint() uint64 {
	h := fnv.New64a()
	write := func(s string) {
		_, _ = io.WriteString(h, s)
		_, _ = h.Write([]byte{0})
	}
	write(t.Method)
	keys := make([]string, 0, len(t.Params))
	for k := range t.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "soft_id" || (k == "body" && t.Image != nil) {
			continue
		}
		write(k)
		write(t.Params[k])
	}
	if t.Image != nil {
		write("\x00image")
		_, _ = h.Write(t.Image)
	}
	return h.Sum64()
}

// Result is one task's answer to res.php: solved (Token set, Code empty)
// or not (Code set: CAPCHA_NOT_READY, ERROR_CAPTCHA_UNSOLVABLE, ...).
type Result struct {
	// Token is the answer as plain text: a token, an image's text, or a
	// structured answer's text form ("challenge:…,validate:…,seccode:…").
	Token string
	// JSON, when set, is the answer as a JSON value for json=1 answers (a
	// GeeTest answer is an object whose fields a client reads); nil sends
	// Token as a JSON string. It must be valid JSON.
	JSON json.RawMessage
	// Code is the task's code when it has no answer.
	Code string
	// Text is the error_text of a Code, for json=1 answers; optional.
	Text string
	// Price is the task's cost, for action=get2.
	Price string
}

// Error is an answer with a code instead of a result. Text, when set, is
// sent as error_text in json=1 answers (never in plain ones).
type Error struct {
	Code string
	Text string
}

// Error returns the code, and the text after a colon when there is one.
func (e *Error) Error() string {
	if e.Text == "" {
		return e.Code
	}
	return e.Code + ": " + e.Text
}

// Errorf returns an *Error with code and a formatted text.
func Errorf(code, format string, args ...any) *Error {
	if len(args) == 0 {
		return &Error{Code: code, Text: format}
	}
	return &Error{Code: code, Text: sprintf(format, args...)}
}

// CodeInternal answers a Backend error that is not an *Error: the caller
// should retry (the catalogue's class is transient). Its cause is never
// sent to the client.
const CodeInternal = "ERROR_INTERNAL_SERVER_ERROR"

// Backend is a server behind the protocol: the simulator, or a gateway in
// front of the engine. The Handler parses and checks each request, calls
// the Backend, and renders what it returns in the format the caller asked
// for. Every method may return an *Error, answered as its code; any other
// error is answered CodeInternal. Methods are called concurrently.
//
// The order of calls for one request is: Admit; then, if the request's
// body or key is malformed, the answer (ERROR_UPLOAD,
// ERROR_WRONG_USER_KEY...) without further calls; then Authenticate; then
// the endpoint's method.
type Backend interface {
	// Admit sees every in.php and res.php request first, before its body
	// or key is checked: the place for IP bans, rate windows and request
	// counts. An error refuses the request.
	Admit(ctx context.Context, r *Request) error
	// Authenticate checks a well-formed key (32 hex characters) and returns
	// the caller's name, which the Handler puts in r.Client. An unknown key
	// is ERROR_KEY_DOES_NOT_EXIST.
	Authenticate(ctx context.Context, r *Request) (client string, err error)
	// Submit accepts a checked task (in.php) and returns its numeric id.
	Submit(ctx context.Context, r *Request, t Task) (id int64, err error)
	// Results answers action=get for one id (id=) or several (ids=), one
	// Result per id, in order. Ids are well-formed numbers; an unknown one
	// is Result{Code: "ERROR_WRONG_CAPTCHA_ID"}.
	Results(ctx context.Context, r *Request, ids []int64) ([]Result, error)
	// Cost answers action=get2: the Result with its Price.
	Cost(ctx context.Context, r *Request, id int64) (Result, error)
	// Balance answers action=getbalance, as a decimal number.
	Balance(ctx context.Context, r *Request) (string, error)
	// Report records action=reportgood (good) or reportbad. Nil is
	// answered OK_REPORT_RECORDED.
	Report(ctx context.Context, r *Request, id int64, good bool) error
	// AddPingback registers a pingback URL (action=add_pingback, addr=).
	AddPingback(ctx context.Context, r *Request, addr string) error
	// Pingbacks lists the registered URLs (action=get_pingback).
	Pingbacks(ctx context.Context, r *Request) ([]string, error)
	// DeletePingback removes a registered URL, or every one when addr is
	// "all" (action=del_pingback).
	DeletePingback(ctx context.Context, r *Request, addr string) error
}

// wellFormedKey reports whether key has the provider's format: 32
// hexadecimal characters.
func wellFormedKey(key string) bool {
	if len(key) != 32 {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// ParseID reads a task id as the provider writes them: 1 to 18 digits.
func ParseID(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// ErrorOf is the answer a server gives for an error of the client's
// provider.Validate (a *provider.FieldError), when it checks a task as the
// engine would before accepting it: the provider's code for the field
// (pageurl: ERROR_PAGEURL, googlekey: ERROR_GOOGLEKEY, body: ERROR_UPLOAD,
// anything else ERROR_BAD_PARAMETERS) with the field and problem as its
// text. Any other error is CodeInternal; nil is nil.
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	var fe *provider.FieldError
	if !errors.As(err, &fe) {
		return &Error{Code: CodeInternal}
	}
	code := "ERROR_BAD_PARAMETERS"
	switch fe.Field {
	case "pageurl":
		code = "ERROR_PAGEURL"
	case "googlekey":
		code = "ERROR_GOOGLEKEY"
	case "body":
		code = "ERROR_UPLOAD"
	case "key":
		code = "ERROR_WRONG_USER_KEY"
	}
	return &Error{Code: code, Text: fe.Field + ": " + fe.Problem}
}
