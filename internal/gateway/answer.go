package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/captchafsm/captchafsm/provider/protocol"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Codes the gateway answers for its own reasons.
const (
	codeNotReady    = "CAPCHA_NOT_READY"
	codeUnsolvable  = "ERROR_CAPTCHA_UNSOLVABLE"
	codeZeroBalance = "ERROR_ZERO_BALANCE"
	codeWrongID     = "ERROR_WRONG_CAPTCHA_ID"
)

// clientCodes are the codes clients know: those of the official
// JavaScript client's table (@2captcha/captcha-solver's 2captchaError.js),
// which the other clients' tables are subsets of. A task's final code
// outside it is answered as a code a client knows (AnswerRules).
var clientCodes = map[string]bool{
	"ERROR_CAPTCHA_UNSOLVABLE": true, "ERROR_WRONG_USER_KEY": true, "ERROR_KEY_DOES_NOT_EXIST": true,
	"ERROR_BAD_DUPLICATES": true, "REPORT_NOT_RECORDED": true, "ERROR_DUPLICATE_REPORT": true,
	"ERROR_IMAGE_TYPE_NOT_SUPPORTED": true, "ERROR_ZERO_CAPTCHA_FILESIZE": true, "ERROR_ZERO_BALANCE": true,
	"ERROR_PAGEURL": true, "ERROR_NO_SLOT_AVAILABLE": true, "ERROR_TOO_BIG_CAPTCHA_FILESIZE": true,
	"ERROR_WRONG_FILE_EXTENSION": true, "ERROR_UPLOAD": true, "ERROR_IP_NOT_ALLOWED": true, "IP_BANNED": true,
	"ERROR_BAD_TOKEN_OR_PAGEURL": true, "ERROR_GOOGLEKEY": true, "ERROR_WRONG_GOOGLEKEY": true,
	"ERROR_CAPTCHAIMAGE_BLOCKED": true, "TOO_MANY_BAD_IMAGES": true, "MAX_USER_TURN": true,
	"ERROR_BAD_PARAMETERS": true, "ERROR_BAD_PROXY": true, "ERROR_CAPTCHA_ID": true,
	"CAPCHA_NOT_READY": true, "ERROR_WRONG_ID_FORMAT": true, "ERROR_WRONG_CAPTCHA_ID": true,
}

// AnswerRule says what a client polling a settled task is answered when
// the task's code is Code: the code Answer, with Why as error_text (json=1).
// A rule with an empty Answer answers the code that opened the breaker.
type AnswerRule struct {
	State  states.State
	Code   string
	Answer string
	Why    string
}

// answerRules are the exceptions to "a Failed task answers its own code"
// and "a parked task answers its account code": the engine's own codes,
// which no client knows, and the provider's codes that would mislead a
// client about its own key or id.
var answerRules = []AnswerRule{
	{states.Failed, transitions.CodePollTimeout, codeUnsolvable, "the provider gave no answer within the gateway's poll_timeout"},
	{states.Failed, transitions.CodeCancelled, codeUnsolvable, "the gateway's operator cancelled the task"},
	{states.Failed, transitions.CodeTransport, codeUnsolvable, "the gateway could not reach the provider within max_retries"},
	{states.Failed, transitions.CodeInvalidRequest, "ERROR_BAD_PARAMETERS", "the task does not pass the engine's validation"},
	{states.Failed, transitions.CodeDeadline, codeUnsolvable, "the task's deadline passed before the provider answered"},
	{states.Failed, "ERROR_WRONG_USER_KEY", protocol.CodeInternal, "the provider refused the gateway's own key: its operator must fix it (your key is fine)"},
	{states.Failed, "ERROR_KEY_DOES_NOT_EXIST", protocol.CodeInternal, "the provider refused the gateway's own key: its operator must fix it (your key is fine)"},
	{states.Failed, "ERROR_WRONG_CAPTCHA_ID", codeUnsolvable, "the provider lost the gateway's task (your id is fine)"},
	{states.Failed, "ERROR_NO_SUCH_CAPCHA_ID", codeUnsolvable, "the provider lost the gateway's task (your id is fine)"},
	{states.Failed, "ERROR_WRONG_ID_FORMAT", codeUnsolvable, "the provider lost the gateway's task (your id is fine)"},
	{states.NeedsAccountFix, "ERROR: 1002", codeZeroBalance, "the provider's account is empty and blocked for 5 minutes; the gateway's operator must top it up"},
	{states.NeedsAccountFix, "ERROR: 1004", "IP_BANNED", "the provider blocks the gateway's address"},
	{states.NeedsAccountFix, "ERROR_IP_BANNED", "IP_BANNED", "the provider bans the gateway's address"},
	{states.NeedsAccountFix, "ERROR_IP_BLOCKED", "IP_BANNED", "the provider bans the gateway's address"},
	{states.NeedsAccountFix, transitions.CodeBreakerOpen, "", "another task's account error stopped every submit; the gateway's operator must fix the account"},
}

// AnswerRules returns the exceptions to the rule "a Failed task answers
// its own code (when clients know it, else ERROR_CAPTCHA_UNSOLVABLE), a
// task parked in NeedsAccountFix its account code", as docs/gateway.md
// lists them. The slice is a copy.
func AnswerRules() []AnswerRule { return append([]AnswerRule(nil), answerRules...) }

var ruleOf = func() map[states.State]map[string]AnswerRule {
	m := map[states.State]map[string]AnswerRule{}
	for _, r := range answerRules {
		if m[r.State] == nil {
			m[r.State] = map[string]AnswerRule{}
		}
		m[r.State][r.Code] = r
	}
	return m
}()

// accountCode remembers the last account code that opened the breaker,
// for tasks parked by it (BREAKER_OPEN).
type accountCode struct {
	mu   sync.Mutex
	code string
}

// saw notes code if it is an account code of the provider's.
func (a *accountCode) saw(code string) {
	e, ok := transitions.Lookup(code)
	if !ok || e.Class != transitions.ClassAccount || e.Where == transitions.Engine {
		return
	}
	a.mu.Lock()
	a.code = code
	a.mu.Unlock()
}

func (a *accountCode) get() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.code
}

// resultOf is the res.php answer for a task in e's state.
func (g *Gateway) resultOf(e entry) protocol.Result {
	switch {
	case e.state == states.Done:
		if e.token == "" {
			return protocol.Result{Code: codeUnsolvable, Text: "the provider answered an empty token"}
		}
		plain, js := shapes(e.method, e.token)
		return protocol.Result{Token: plain, JSON: js}
	case e.state == states.Failed:
		return failedResult(e.code)
	case e.state == states.NeedsAccountFix:
		return parkedResult(e.code, g.account.get())
	}
	return protocol.Result{Code: codeNotReady}
}

func failedResult(code string) protocol.Result {
	if r, ok := ruleOf[states.Failed][code]; ok {
		return protocol.Result{Code: r.Answer, Text: r.Why + " (" + code + ")"}
	}
	if clientCodes[code] {
		return protocol.Result{Code: code, Text: "the task failed at the provider with " + code}
	}
	return protocol.Result{Code: codeUnsolvable, Text: fmt.Sprintf("the task failed with %.64s", printable(code))}
}

func parkedResult(code, opened string) protocol.Result {
	if r, ok := ruleOf[states.NeedsAccountFix][code]; ok {
		if r.Answer != "" {
			return protocol.Result{Code: r.Answer, Text: r.Why + " (" + code + ")"}
		}
		if opened == "" || opened == code {
			return protocol.Result{Code: codeZeroBalance, Text: r.Why}
		}
		res := parkedResult(opened, "")
		res.Text = r.Why + " (" + opened + ")"
		return res
	}
	if clientCodes[code] {
		return protocol.Result{Code: code, Text: "the provider's account needs its operator (" + code + "); the task waits and goes on once it is fixed"}
	}
	return protocol.Result{Code: codeZeroBalance, Text: fmt.Sprintf("the provider's account needs its operator (%.64s)", printable(code))}
}

// printable keeps a code's text safe for error_text.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// shapes returns an answer's two forms: plain text, as clients read it
// with json=0 and CaptchaAI writes it, and the JSON value json=1 clients
// read (nil: the plain text as a JSON string). The engine keeps the answer
// the provider gave: a GeeTest answer is a JSON object when the provider
// wrote one ({"geetest_challenge":…}), which plain clients read as
// "challenge:…,validate:…,seccode:…"; and CaptchaAI's plain form of a
// GeeTest answer becomes the object for json=1 clients, whose code reads
// its fields.
func shapes(method, token string) (plain string, js json.RawMessage) {
	t := strings.TrimSpace(token)
	if strings.HasPrefix(t, "{") {
		if fields, err := objectFields(t); err == nil && len(fields) > 0 {
			parts := make([]string, len(fields))
			for i, f := range fields {
				parts[i] = strings.TrimPrefix(f[0], "geetest_") + ":" + f[1]
			}
			return strings.Join(parts, ","), json.RawMessage(t)
		}
		return token, nil
	}
	if method == "geetest" || method == "geetest_v4" {
		if obj, ok := geetestObject(t); ok {
			return token, obj
		}
	}
	return token, nil
}

// objectFields reads a flat JSON object's fields in order, each value as
// text (a string's content, anything else its JSON).
func objectFields(s string) ([][2]string, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	var out [][2]string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			var buf bytes.Buffer
			if json.Compact(&buf, raw) != nil {
				return nil, errors.New("bad value")
			}
			v = buf.String()
		}
		out = append(out, [2]string{name, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the object")
	}
	return out, nil
}

// geetestFields are the fields of GeeTest answers in plain text: v3's
// (2captcha's JSON prefixes them with geetest_) and v4's.
var geetestFields = map[string]string{
	"challenge": "geetest_challenge", "validate": "geetest_validate", "seccode": "geetest_seccode",
	"captcha_id": "captcha_id", "lot_number": "lot_number", "pass_token": "pass_token",
	"gen_time": "gen_time", "captcha_output": "captcha_output",
}

// geetestObject turns "challenge:…,validate:…,seccode:…" (or v4's fields)
// into the JSON object 2captcha's clients read.
func geetestObject(s string) (json.RawMessage, bool) {
	parts := strings.Split(s, ",")
	if len(parts) < 3 {
		return nil, false
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, p := range parts {
		name, value, ok := strings.Cut(p, ":")
		field, known := geetestFields[name]
		if !ok || !known {
			return nil, false
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(field)
		v, _ := json.Marshal(value)
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), true
}
