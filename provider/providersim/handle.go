package providersim

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/captchafsm/captchafsm/provider"
)

const (
	minImage = 100
	maxImage = 100 * 1024
	// maxBody bounds what a request may carry: a base64 image of maxImage
	// bytes with room to spare.
	maxBody = 1 << 20
	// defaultSlowDelay outlasts the default request timeout (30 s).
	defaultSlowDelay = 35 * time.Second
)

// reply is a decided HTTP answer, shared by ServeHTTP and the in-process
// transport.
type reply struct {
	status int
	ctype  string
	body   string
	fault  Fault // FaultDrop or FaultSlow: the answer is lost or held back
	delay  time.Duration
}

// answer is an API answer before it is rendered as text or JSON.
type answer struct {
	status  int    // JSON status: 1 or 0
	plain   string // the text body
	request string // JSON "request"
	price   string // JSON "price" (get2)
}

func errAnswer(code string) answer { return answer{status: 0, plain: code, request: code} }

func okAnswer(v string) answer { return answer{status: 1, plain: "OK|" + v, request: v} }

// request is a parsed API request.
type request struct {
	json    bool
	form    url.Values
	file    []byte
	badBody string // a code the parse itself produced (bad upload)
}

const (
	html502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

// handle decides the answer to r. It reads (and drains) r's body; it never
// blocks on time.
func (s *Sim) handle(r *http.Request) reply {
	var submit bool
	switch {
	case strings.HasSuffix(r.URL.Path, "/in.php"):
		submit = true
	case strings.HasSuffix(r.URL.Path, "/res.php"):
	default:
		drain(r.Body)
		return reply{status: http.StatusNotFound, ctype: "text/plain; charset=utf-8", body: "404 page not found\n"}
	}
	req := parse(r, submit)
	drain(r.Body)

	var kind, faultKind Kind
	ids := 0
	if submit {
		kind, faultKind = KindSubmit, KindSubmit
	} else {
		switch req.form.Get("action") {
		case "get":
			kind, faultKind = KindPoll, KindPoll
			ids = 1
			if v := req.form.Get("ids"); v != "" {
				ids = strings.Count(v, ",") + 1
			}
		case "get2":
			kind, faultKind = KindGet2, KindPoll
		case "getbalance":
			kind, faultKind = KindBalance, KindBalance
		case "reportgood", "reportbad":
			kind, faultKind = KindReport, KindReport
		default:
			kind, faultKind = KindOther, KindPoll
		}
	}
	var fp Fingerprint
	if submit {
		fp = fingerprint(req.form, req.file)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixNano()
	s.requests[kind]++
	if ids > 0 {
		s.requests[KindPollIDs] += ids
	}
	rates := s.faultRates(faultKind)
	fault := Fault("")
	if rates.any() {
		fault = drawFault(rates, s.faultRNG.Float64())
	}
	if fault != "" {
		s.faultN[FaultKey{Kind: faultKind, Fault: fault}]++
	}
	switch fault {
	case FaultHTTP500:
		return reply{status: http.StatusInternalServerError, ctype: "text/plain; charset=utf-8", body: "Internal Server Error\n"}
	case FaultHTML502:
		return reply{status: http.StatusBadGateway, ctype: "text/html", body: html502}
	}

	var a answer
	if submit {
		a = s.submit(now, req, fp)
	} else {
		a = s.result(now, req)
	}
	rep := render(a, req.json)
	rep.fault = fault
	if fault == FaultSlow {
		rep.delay = rates.SlowDelay
		if rep.delay == 0 {
			rep.delay = defaultSlowDelay
		}
	}
	return rep
}

func (s *Sim) faultRates(k Kind) FaultRates {
	switch k {
	case KindSubmit:
		return s.faults.Submit
	case KindBalance:
		return s.faults.Balance
	case KindReport:
		return s.faults.Report
	}
	return s.faults.Poll
}

func drawFault(f FaultRates, r float64) Fault {
	for _, c := range []struct {
		p     float64
		fault Fault
	}{{f.HTTP500, FaultHTTP500}, {f.HTML502, FaultHTML502}, {f.Drop, FaultDrop}, {f.Slow, FaultSlow}} {
		if r < c.p {
			return c.fault
		}
		r -= c.p
	}
	return ""
}

func render(a answer, asJSON bool) reply {
	if !asJSON {
		return reply{status: http.StatusOK, ctype: "text/plain; charset=utf-8", body: a.plain}
	}
	b, err := json.Marshal(struct {
		Status  int    `json:"status"`
		Request string `json:"request"`
		Price   string `json:"price,omitempty"`
	}{a.status, a.request, a.price})
	if err != nil { // cannot happen: strings and an int
		panic(err)
	}
	return reply{status: http.StatusOK, ctype: "application/json", body: string(b)}
}

func drain(b io.ReadCloser) {
	if b != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(b, maxBody))
	}
}

// parse reads r's form (query and body) and, for a multipart submit, the
// file. A body that cannot be read becomes the code the provider would
// answer.
func parse(r *http.Request, submit bool) request {
	var req request
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	if ct == "multipart/form-data" {
		err = r.ParseMultipartForm(maxBody)
		if err == nil && r.MultipartForm != nil {
			defer func() { _ = r.MultipartForm.RemoveAll() }()
			if fhs := r.MultipartForm.File["file"]; len(fhs) > 0 {
				req.file, err = readPart(fhs[0])
				if req.file == nil {
					req.file = []byte{}
				}
			}
		}
	} else {
		err = r.ParseForm()
	}
	req.form = r.Form
	if req.form == nil {
		req.form = r.URL.Query()
	}
	req.json = req.form.Get("json") == "1"
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig) && submit:
			req.badBody = "ERROR_TOO_BIG_CAPTCHA_FILESIZE"
		case submit:
			req.badBody = "ERROR_UPLOAD"
		default:
			req.badBody = "ERROR_BAD_PARAMETERS"
		}
	}
	return req
}

func readPart(fh *multipart.FileHeader) ([]byte, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return io.ReadAll(io.LimitReader(f, maxBody))
}

// fingerprint hashes what identifies a captcha: every parameter but the key
// and the answer-format ones, and the image.
func fingerprint(form url.Values, file []byte) Fingerprint {
	h := fnv.New64a()
	for _, k := range sortedKeys(form) {
		switch k {
		case "key", "json", "soft_id", "header_acao", "pingback":
			continue
		}
		for _, v := range form[k] {
			_, _ = io.WriteString(h, k)
			_, _ = h.Write([]byte{0})
			_, _ = io.WriteString(h, v)
			_, _ = h.Write([]byte{0})
		}
	}
	if file != nil {
		_, _ = io.WriteString(h, "\x00file\x00")
		_, _ = h.Write(file)
	}
	return Fingerprint(h.Sum64())
}

// keyCode checks the request's key: "" when it is accepted.
func (s *Sim) keyCode(key string) string {
	if !wellFormedKey(key) {
		return "ERROR_WRONG_USER_KEY"
	}
	if s.key != "" && subtle.ConstantTimeCompare([]byte(strings.ToLower(key)), []byte(strings.ToLower(s.key))) != 1 {
		return "ERROR_KEY_DOES_NOT_EXIST"
	}
	return ""
}

// submit answers in.php. Called with s.mu held.
func (s *Sim) submit(now int64, req request, fp Fingerprint) answer {
	a := s.submitAnswer(now, req, fp)
	if a.status == 1 {
		s.answers["OK"]++
	} else {
		s.answers[a.plain]++
	}
	return a
}

func (s *Sim) submitAnswer(now int64, req request, fp Fingerprint) answer {
	if s.submitBan.active(now) {
		return errAnswer(s.submitBan.code)
	}
	if s.rules {
		if s.submitWin.full(now) {
			s.submitWin.reset()
			s.startBan(&s.submitBan, now, provider.CodeSubmitBurst, submitBurstBan)
			return errAnswer(provider.CodeSubmitBurst)
		}
		s.submitWin.add(now)
	}
	// A body that could not be read may have lost the key with it.
	if req.badBody != "" {
		return errAnswer(req.badBody)
	}
	if code := s.keyCode(req.form.Get("key")); code != "" {
		return errAnswer(code)
	}
	// One draw per submit that reaches this point, whatever follows, so the
	// sequence of draws depends only on the sequence of requests.
	mixCode := draw(s.submitMix, s.submitRNG.Float64())

	name := req.form.Get("method")
	code := validate(name, req)
	var mi uint16
	if code == "" {
		var ok bool
		if mi, ok = s.method(name); !ok {
			code = "ERROR_BAD_PARAMETERS"
		}
	}
	if code != "" {
		return errAnswer(code)
	}
	p := s.prints[fp]
	p.Requests++
	s.prints[fp] = p

	if mixCode != "" {
		return s.flood(now, mixCode)
	}
	m := &s.methods[mi]
	if s.balance < m.cost || s.balance <= 0 {
		return s.flood(now, "ERROR_ZERO_BALANCE")
	}
	return s.accept(now, mi, fp)
}

// flood answers code, and starts the ban a flood of it earns.
func (s *Sim) flood(now int64, code string) answer {
	var w *window
	var banCode string
	var d time.Duration
	switch code {
	case "ERROR_NO_SLOT_AVAILABLE":
		w, banCode, d = &s.noSlotWin, provider.CodeNoSlotFlood, noSlotFloodBan
	case "ERROR_ZERO_BALANCE":
		w, banCode, d = &s.zeroBalWin, provider.CodeZeroBalanceFlood, zeroBalFloodBan
	}
	if w != nil && s.rules {
		w.add(now)
		if w.n == len(w.times) && now-w.oldest() < w.span {
			w.reset()
			s.startBan(&s.submitBan, now, banCode, d)
		}
	}
	return errAnswer(code)
}

func (s *Sim) accept(now int64, mi uint16, fp Fingerprint) answer {
	m := &s.methods[mi]
	solve := m.dist.Min
	if span := int64(m.dist.Max - m.dist.Min); span > 0 {
		solve += time.Duration(s.taskRNG.Int64N(span + 1))
	}
	outcome := s.outcomeIndex(draw(s.pollMix, s.taskRNG.Float64()))
	s.balance -= m.cost
	s.charged += m.cost
	id := firstID + int64(len(s.tasks))
	s.tasks = append(s.tasks, task{
		accepted: now,
		ready:    now + int64(s.scale(solve)),
		fp:       fp,
		cost:     m.cost,
		method:   mi,
		outcome:  outcome,
	})
	p := s.prints[fp]
	p.Accepted++
	s.prints[fp] = p
	s.hour.add(now, 0, 1)
	return okAnswer(strconv.FormatInt(id, 10))
}

// validate checks a submit's parameters as the provider does: "" when they
// are acceptable.
func validate(method string, req request) string {
	f := req.form
	switch method {
	case "":
		return "ERROR_BAD_PARAMETERS"
	case "post":
		return checkImage(req.file)
	case "base64":
		body := f.Get("body")
		if body == "" {
			return "ERROR_ZERO_CAPTCHA_FILESIZE"
		}
		img, err := decodeBase64(body)
		if err != nil {
			return "ERROR_UPLOAD"
		}
		return checkImage(img)
	case "userrecaptcha":
		k := f.Get("googlekey")
		if k == "" {
			return "ERROR_WRONG_GOOGLEKEY"
		}
		if !tokenChars(k) {
			return "ERROR_GOOGLEKEY"
		}
		return checkPageURL(f.Get("pageurl"))
	case "hcaptcha", "turnstile":
		return require(f, "sitekey")
	case "funcaptcha":
		return require(f, "publickey")
	case "geetest":
		return require(f, "gt", "challenge")
	case "geetest_v4":
		return require(f, "captcha_id")
	}
	if !tokenChars(method) || len(method) > 32 {
		return "ERROR_BAD_PARAMETERS"
	}
	return ""
}

func require(f url.Values, keys ...string) string {
	for _, k := range keys {
		if strings.TrimSpace(f.Get(k)) == "" {
			return "ERROR_BAD_PARAMETERS"
		}
	}
	return checkPageURL(f.Get("pageurl"))
}

func checkPageURL(v string) string {
	u, err := url.Parse(v)
	if v == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "ERROR_PAGEURL"
	}
	return ""
}

func tokenChars(s string) bool {
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return s != ""
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if i := strings.Index(s, ";base64,"); i >= 0 && strings.HasPrefix(s, "data:") {
		s = s[i+len(";base64,"):]
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

func checkImage(img []byte) string {
	switch {
	case len(img) < minImage:
		return "ERROR_ZERO_CAPTCHA_FILESIZE"
	case len(img) > maxImage:
		return "ERROR_TOO_BIG_CAPTCHA_FILESIZE"
	case strings.HasPrefix(string(img[:8]), "\x89PNG\r\n\x1a\n"),
		strings.HasPrefix(string(img[:3]), "\xff\xd8\xff"),
		strings.HasPrefix(string(img[:6]), "GIF87a"), strings.HasPrefix(string(img[:6]), "GIF89a"):
		return ""
	}
	return "ERROR_IMAGE_TYPE_NOT_SUPPORTED"
}

// result answers res.php. Called with s.mu held.
func (s *Sim) result(now int64, req request) answer {
	if s.resultBan.active(now) {
		s.answers[s.resultBan.code]++
		return errAnswer(s.resultBan.code)
	}
	if s.rules {
		s.hour.add(now, 1, 0)
		polls, accepts := s.hour.sum(now)
		if polls > provider.PollBudget(accepts) {
			s.hour.resetPolls()
			s.startBan(&s.resultBan, now, provider.CodePollBudget, pollFloodBan)
			s.answers[provider.CodePollBudget]++
			return errAnswer(provider.CodePollBudget)
		}
	}
	if req.badBody != "" {
		s.answers[req.badBody]++
		return errAnswer(req.badBody)
	}
	if code := s.keyCode(req.form.Get("key")); code != "" {
		s.answers[code]++
		return errAnswer(code)
	}
	f := req.form
	switch action := f.Get("action"); action {
	case "get":
		if ids := f.Get("ids"); ids != "" {
			parts := strings.Split(ids, ",")
			for i, p := range parts {
				code, tok := s.poll(now, p)
				if code == "" {
					parts[i] = tok
					s.answers["OK"]++
				} else {
					parts[i] = code
					s.answers[code]++
				}
			}
			j := strings.Join(parts, "|")
			return answer{status: 1, plain: j, request: j}
		}
		code, tok := s.poll(now, f.Get("id"))
		if code != "" {
			s.answers[code]++
			return errAnswer(code)
		}
		s.answers["OK"]++
		return okAnswer(tok)
	case "get2":
		id := f.Get("id")
		code, tok := s.poll(now, id)
		if code != "" {
			s.answers[code]++
			return errAnswer(code)
		}
		s.answers["OK"]++
		n, _ := parseID(id)
		price := formatMoney(s.tasks[n-firstID].cost)
		return answer{status: 1, plain: "OK|" + tok + "|" + price, request: tok, price: price}
	case "getbalance":
		s.answers["OK"]++
		b := formatMoney(s.balance)
		return answer{status: 1, plain: b, request: b}
	case "reportgood", "reportbad":
		code := s.report(now, f.Get("id"), action == "reportgood")
		s.answers[code]++
		if code == "OK_REPORT_RECORDED" {
			return answer{status: 1, plain: code, request: code}
		}
		return errAnswer(code)
	default:
		// The provider treats an action it does not know as a missing one.
		s.answers["ERROR_EMPTY_ACTION"]++
		return errAnswer("ERROR_EMPTY_ACTION")
	}
}

// parseID reads a provider id: digits only.
func parseID(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 18 {
		return 0, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// lookup returns the task of a provider id, or the code to answer.
func (s *Sim) lookup(v string) (*task, string) {
	n, ok := parseID(v)
	if !ok {
		return nil, "ERROR_WRONG_ID_FORMAT"
	}
	i := n - firstID
	if i < 0 || i >= int64(len(s.tasks)) {
		return nil, "ERROR_WRONG_CAPTCHA_ID"
	}
	return &s.tasks[i], ""
}

// poll answers one id of action=get or get2: a code, or "" and the token.
func (s *Sim) poll(now int64, v string) (code, token string) {
	t, code := s.lookup(v)
	if code != "" {
		return code, ""
	}
	t.polls++
	switch {
	case now < t.ready:
		return "CAPCHA_NOT_READY", ""
	case t.outcome != 0:
		return s.codes[t.outcome], ""
	case s.tokenTTL > 0 && now >= t.ready+s.tokenTTL:
		return "ERROR_TOKEN_EXPIRED", ""
	}
	n, _ := parseID(v)
	return "", s.token(n, s.methods[t.method].name)
}

func (s *Sim) report(now int64, v string, good bool) string {
	t, code := s.lookup(v)
	if code != "" {
		return code
	}
	if t.report != reportNone {
		return "ERROR_DUPLICATE_REPORT"
	}
	if now < t.ready || t.outcome != 0 {
		return "ERROR_REPORT_NOT_RECORDED"
	}
	t.report = reportBad
	if good {
		t.report = reportGood
	}
	return "OK_REPORT_RECORDED"
}
