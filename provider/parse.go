package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/captchafsm/captchafsm/transitions"
)

// answer is one parsed API answer.
type answer struct {
	status  int
	request string
	// price is the JSON answer's "price" field (get2), "" if absent.
	price string
	// errorText is the JSON answer's "error_text", made printable and
	// bounded; "" if absent.
	errorText string
}

// maxErrorText bounds the error_text kept: it ends up in history.
const maxErrorText = 512

// ParseAnswer reads an answer of in.php or res.php in either format:
//
//   - JSON: {"status":1,"request":"..."}; a request that is a JSON object
//     (geetest's answer) is returned as its compact JSON text;
//   - plain text: "OK|<request>" (status 1), "OK_REPORT_RECORDED" and other
//     "OK_" words (status 1, the word as request), a code such as
//     "ERROR_ZERO_BALANCE", "CAPCHA_NOT_READY" or "ERROR: 1001", or an
//     upper-case word with an underscore the catalogue does not know (status 0,
//     the code as request), a '|'-separated batch answer or a bare number
//     (getbalance) (status 1, the text as request).
//
// Status 0 always comes with a non-empty request: the code. Anything else —
// an empty body, an HTML page, text that is none of the above, invalid or
// truncated JSON, a status other than 0 or 1, invalid UTF-8, control
// characters in the request — is an error wrapping ErrMalformed.
func ParseAnswer(body []byte) (status int, request string, err error) {
	a, err := parseAnswer(body)
	return a.status, a.request, err
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func parseAnswer(body []byte) (answer, error) {
	b := bytes.TrimSpace(body)
	b = bytes.TrimPrefix(b, []byte("\xEF\xBB\xBF")) // a BOM some PHP setups emit
	switch {
	case len(b) == 0:
		return answer{}, malformed("empty body")
	case b[0] == '<':
		return answer{}, malformed("an HTML page, not an API answer")
	case !utf8.Valid(b):
		return answer{}, malformed("not UTF-8")
	}
	var a answer
	var err error
	if b[0] == '{' {
		a, err = parseJSON(b)
	} else {
		a, err = parsePlain(string(b))
	}
	if err != nil {
		return answer{}, err
	}
	// Tokens and codes end up in history, terminals and JSON lines.
	if hasControl(a.request) || hasControl(a.price) {
		return answer{}, malformed("answer has control characters")
	}
	return a, nil
}

// printable replaces control characters with spaces, trims, and cuts s to
// at most n bytes on a rune boundary.
func printable(s string, n int) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?")))
	if len(s) > n {
		i := n
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return s
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

func parseJSON(b []byte) (answer, error) {
	var v struct {
		Status  json.RawMessage `json:"status"`
		Request json.RawMessage `json:"request"`
		Price   json.RawMessage `json:"price"`
		// error_text is an explanation, never worth rejecting an answer
		// for: a value that is not a string is ignored.
		ErrorText any `json:"error_text"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return answer{}, malformed("invalid JSON")
	}
	var a answer
	switch s := strings.Trim(string(v.Status), `"`); s {
	case "0":
		a.status = 0
	case "1":
		a.status = 1
	case "":
		return answer{}, malformed("JSON answer without status")
	default:
		return answer{}, malformed("JSON status is neither 0 nor 1")
	}
	req, err := jsonText(v.Request)
	if err != nil {
		return answer{}, malformed("JSON request: %v", err)
	}
	a.request = req
	if a.status == 0 {
		a.request = strings.TrimSpace(a.request)
		if a.request == "" || v.Request[0] != '"' {
			return answer{}, malformed("JSON status 0 without a code")
		}
	}
	if t, ok := v.ErrorText.(string); ok {
		a.errorText = printable(t, maxErrorText)
	}
	if len(v.Price) > 0 {
		if a.price, err = jsonText(v.Price); err != nil {
			return answer{}, malformed("JSON price: %v", err)
		}
	}
	return a, nil
}

// jsonText returns a JSON string's value, or the compact text of any other
// JSON value (an object, a number).
func jsonText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", fmt.Errorf("missing")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func parsePlain(s string) (answer, error) {
	if hasControl(s) {
		return answer{}, malformed("plain answer has control characters")
	}
	switch {
	case s == "OK":
		return answer{status: 1}, nil
	case strings.HasPrefix(s, "OK|"):
		return answer{status: 1, request: s[3:]}, nil
	case strings.HasPrefix(s, "OK_"):
		return answer{status: 1, request: s}, nil
	case strings.Contains(s, "|"):
		return answer{status: 1, request: s}, nil
	case isCodeText(s), bareWord(s):
		return answer{status: 0, request: s}, nil
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return answer{status: 1, request: s}, nil
	}
	return answer{}, malformed("plain answer is neither OK|..., a code nor a number")
}

// isCodeText reports whether s is a provider code: a catalogue code or one
// of the ERROR family (transitions.IsCode). Anything else — "W68HP", or an
// image answer such as "AB_CD" that looks like a code — is an answer: in a
// batch, answers and codes stand side by side with nothing else to tell
// them apart.
func isCodeText(s string) bool { return transitions.IsCode(s) }

// bareWord reports whether a whole plain-text body is an upper-case word
// with an underscore ("NEW_LIMIT"). Alone, such a body can only be a code
// the catalogue does not know yet: a solved task is answered "OK|answer".
func bareWord(s string) bool {
	if len(s) < 3 || s[0] < 'A' || s[0] > 'Z' || !strings.Contains(s, "_") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ParseBatch splits the request of a batch poll (action=get&ids=a,b,c) into
// n answers, in the order of the ids. Each part is either a code
// (CAPCHA_NOT_READY, ERROR_CAPTCHA_UNSOLVABLE, ... with its class; unknown
// codes keep their text with transitions.ClassUnknown) or a token; spaces
// around a part are dropped. A count other than n, an empty part or one
// with control characters is an error wrapping ErrMalformed.
func ParseBatch(request string, n int) ([]Answer, error) {
	if n < 1 {
		return nil, malformed("batch of %d answers", n)
	}
	if got := strings.Count(request, "|") + 1; got != n {
		return nil, malformed("batch has %d answers, want %d", got, n)
	}
	parts := strings.Split(request, "|")
	out := make([]Answer, n)
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, malformed("batch answer %d is empty", i+1)
		}
		if hasControl(p) {
			return nil, malformed("batch answer %d has control characters", i+1)
		}
		out[i] = answerOf(p)
	}
	return out, nil
}

// answerOf turns one answer text into a token or a classified code.
func answerOf(s string) Answer {
	if isCodeText(s) {
		return Answer{Code: s, Class: transitions.Classify(s)}
	}
	return Answer{Token: s}
}
