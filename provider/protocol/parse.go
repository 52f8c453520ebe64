package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// DefaultMaxBody bounds a request's body when Options.MaxBody is zero: a
// base64 image of the provider's largest (100 kB), or an audio file, with
// room to spare.
const DefaultMaxBody = 2 << 20

// Parse reads an API request for endpoint (EndpointIn or EndpointRes) the
// way the provider does, so that every client's shape of request works:
//
//   - the query string;
//   - a body, whatever the HTTP method: application/x-www-form-urlencoded,
//     multipart/form-data (the part "file" becomes File, other file parts
//     are put in Form as base64), or a JSON object — sent as
//     application/json (the official JavaScript client) or as text/plain,
//     or with no type, when it starts with '{' (the community `2captcha`
//     client puts key and method in the query and {"body": ...} in a
//     text/plain body). JSON numbers keep their text, true and false
//     become "1" and "0", null is left out, arrays and objects keep their
//     compact JSON text.
//
// Later sources win: body over query, and within one source the last
// value of a repeated name, as PHP's $_REQUEST has it. A body that cannot
// be read — larger than maxBody, a broken multipart or urlencoded body,
// JSON that is not one object — sets Err (in.php: ERROR_TOO_BIG_CAPTCHA_FILESIZE
// or ERROR_UPLOAD; res.php: ERROR_BAD_PARAMETERS) and keeps whatever the
// query held. maxBody <= 0 means DefaultMaxBody. Parse never panics on any
// input; it reads at most maxBody+1 bytes of the body.
func Parse(r *http.Request, endpoint string, maxBody int64) *Request {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	req := &Request{Endpoint: endpoint, Addr: addrOf(r.RemoteAddr), Form: url.Values{}}
	merge(req.Form, r.URL.Query())
	if err := parseBody(req, r, maxBody); err != nil {
		req.Err = err
	}
	f := req.Form
	req.Key = f.Get("key")
	req.JSON = truthy(f.Get("json"))
	req.ACAO = truthy(f.Get("header_acao"))
	if endpoint == EndpointRes {
		req.Action = f.Get("action")
	}
	return req
}

func truthy(v string) bool { return v == "1" || strings.EqualFold(v, "true") }

func addrOf(remote string) string {
	if remote == "" {
		return ""
	}
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// merge copies src into dst, one value per name: the last one.
func merge(dst, src url.Values) {
	for k, vs := range src {
		if len(vs) > 0 {
			dst[k] = []string{vs[len(vs)-1]}
		}
	}
}

// bodyErr is the code a body that cannot be read earns.
func bodyErr(endpoint string, tooBig bool, format string, args ...any) *Error {
	switch {
	case endpoint != EndpointIn:
		return Errorf("ERROR_BAD_PARAMETERS", format, args...)
	case tooBig:
		return Errorf("ERROR_TOO_BIG_CAPTCHA_FILESIZE", format, args...)
	}
	return Errorf("ERROR_UPLOAD", format, args...)
}

func parseBody(req *Request, r *http.Request, maxBody int64) *Error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return bodyErr(req.Endpoint, false, "the request's body could not be read")
	}
	if int64(len(body)) > maxBody {
		return bodyErr(req.Endpoint, true, "the request's body is larger than %d bytes", maxBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case ct == "multipart/form-data":
		return parseMultipart(req, body, params["boundary"])
	case ct == "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return bodyErr(req.Endpoint, false, "the urlencoded body is malformed")
		}
		merge(req.Form, vals)
		return nil
	case ct == "application/json", (ct == "" || ct == "text/plain") && startsJSON(body):
		return parseJSON(req, body)
	}
	// Any other body (plain text, XML) is not read by the provider either.
	return nil
}

func startsJSON(b []byte) bool {
	b = bytes.TrimSpace(bytes.TrimPrefix(b, []byte("\xEF\xBB\xBF")))
	return len(b) > 0 && b[0] == '{'
}

func parseMultipart(req *Request, body []byte, boundary string) *Error {
	if boundary == "" {
		return bodyErr(req.Endpoint, false, "multipart body without a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	vals := url.Values{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return bodyErr(req.Endpoint, false, "the multipart body is malformed")
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return bodyErr(req.Endpoint, false, "a part of the multipart body is malformed")
		}
		name := part.FormName()
		switch {
		case name == "":
		case part.FileName() != "" && name == "file":
			req.File = data
		case part.FileName() != "":
			vals.Set(name, base64.StdEncoding.EncodeToString(data))
		default:
			vals.Set(name, string(data))
		}
	}
	merge(req.Form, vals)
	return nil
}

func parseJSON(req *Request, body []byte) *Error {
	body = bytes.TrimPrefix(bytes.TrimSpace(body), []byte("\xEF\xBB\xBF"))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return bodyErr(req.Endpoint, false, "the JSON body is not a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bodyErr(req.Endpoint, false, "the JSON body has data after its object")
	}
	vals := url.Values{}
	for k, raw := range obj {
		v, ok, err := jsonValue(raw)
		if err != nil {
			return bodyErr(req.Endpoint, false, "the JSON body's %.40q is malformed", k)
		}
		if ok {
			vals.Set(k, v)
		}
	}
	merge(req.Form, vals)
	return nil
}

// jsonValue turns one JSON value into a parameter's text; ok is false for
// null.
func jsonValue(raw json.RawMessage) (v string, ok bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false, fmt.Errorf("empty")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, err
		}
		return s, true, nil
	case 'n':
		return "", false, nil
	case 't':
		return "1", true, nil
	case 'f':
		return "0", true, nil
	case '{', '[':
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return "", false, err
		}
		return buf.String(), true, nil
	}
	return string(raw), true, nil // a number, as written
}
