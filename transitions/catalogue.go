package transitions

import (
	"sort"
	"strings"
	"time"
)

// Class is how an API answer is handled. The string forms are part of the
// product contract (the `errors --json` output).
type Class string

// The classes of the error guide, plus ClassUnknown for codes the catalogue
// does not hold.
const (
	// ClassPermanent: the request itself is wrong; sending it again fails
	// again and may be charged. The task fails and is never sent again.
	ClassPermanent Class = "permanent"
	// ClassTransient: the provider is busy or a rate limit was touched; wait
	// and try again.
	ClassTransient Class = "transient"
	// ClassAccount: the account cannot take work until a person fixes it;
	// every submit of the engine stops (the circuit breaker).
	ClassAccount Class = "account"
	// ClassNotReady: the answer is not ready yet; poll again later.
	ClassNotReady Class = "not_ready"
	// ClassResubmit: the provider closed the task without an answer; a new
	// task with the same parameters usually succeeds.
	ClassResubmit Class = "resubmit"
	// ClassUnknown: a code the catalogue does not know. The engine fails the
	// task and keeps the raw code in its history.
	ClassUnknown Class = "unknown"
)

// Classes lists the classes a catalogue entry may have (ClassUnknown is
// never an entry's class).
func Classes() []Class {
	return []Class{ClassPermanent, ClassTransient, ClassAccount, ClassNotReady, ClassResubmit}
}

// Where tells which endpoint answers with a code.
type Where string

// The endpoints.
const (
	InPHP  Where = "in.php"
	ResPHP Where = "res.php"
	Both   Where = "both"
	// Engine marks the engine's own codes: outcomes that are not a
	// provider's answer but are classified like one.
	Engine Where = "engine"
)

// Entry is one code of the catalogue.
type Entry struct {
	// Code is the provider's code, exactly as it appears in an answer.
	Code string
	// Class decides what the engine does.
	Class Class
	// Where is the endpoint that answers with the code.
	Where Where
	// Meaning says what happened, for a person.
	Meaning string
	// Fix says what a person should change.
	Fix string
	// RetryDelay is the wait before the task is tried again, where the
	// provider gives one. Zero means the policy's exponential backoff.
	RetryDelay time.Duration
	// BackoffMin and BackoffMax, when set, bound an exponential backoff of
	// the code's own (ERROR_TOO_MUCH_REQUESTS: 3–10 s).
	BackoffMin, BackoffMax time.Duration
	// Ban is the length of an account- or IP-wide block the code announces.
	// A ban is not a per-task error: the whole engine stops sending requests
	// until it has passed, and no task is charged a retry for it.
	Ban time.Duration
	// FromGuide is true for the codes of the error guide the project was
	// created from; false for the ones added from the provider's docs.
	FromGuide bool
	// KeyWide is true for a code about the API key, not the task: every
	// request with the same key gets it, so the engine stops sending (the
	// breaker) instead of failing each task with a request of its own
	// (which earns the key's IP ban after a few dozen); a task already
	// paid for that meets it on res.php parks instead of failing.
	KeyWide bool
}

// IsBan reports whether the code announces an engine-wide block.
func (e Entry) IsBan() bool { return e.Ban > 0 }

// catalogue is the single source of truth for codes. Docs, the CLI's
// `errors` table and the simulator's error mix are derived from it.
var catalogue = []Entry{
	// ---- The error guide: permanent (in.php) ----
	{Code: "ERROR_WRONG_USER_KEY", Class: ClassPermanent, Where: Both, FromGuide: true, KeyWide: true,
		Meaning: "The API key has an invalid format (it must be 32 hex characters).",
		Fix:     "Check the key's format: 32 hex characters, no spaces or line breaks."},
	{Code: "ERROR_KEY_DOES_NOT_EXIST", Class: ClassPermanent, Where: Both, FromGuide: true, KeyWide: true,
		Meaning: "The API key has a valid format but no account has it.",
		Fix:     "Copy the key again from the provider's dashboard."},
	// The guide lists the two task-id codes under in.php, but only res.php
	// takes a task id: they are answers to a poll or a report.
	{Code: "ERROR_WRONG_ID_FORMAT", Class: ClassPermanent, Where: ResPHP, FromGuide: true,
		Meaning: "The task id is malformed.",
		Fix:     "Use the numeric task id that in.php returned."},
	{Code: "ERROR_WRONG_CAPTCHA_ID", Class: ClassPermanent, Where: ResPHP, FromGuide: true,
		Meaning: "No task has this id.",
		Fix:     "Submit a new task."},
	{Code: "ERROR_BAD_DUPLICATES", Class: ClassPermanent, Where: ResPHP, FromGuide: true,
		Meaning: "The duplicate (100% recognition) limit was reached without agreement.",
		Fix:     "Change the parameters or wait before sending the same task."},
	{Code: "ERROR_IMAGE_TYPE_NOT_SUPPORTED", Class: ClassPermanent, Where: InPHP, FromGuide: true,
		Meaning: "The server cannot recognise the image's format.",
		Fix:     "Send a PNG, JPEG or GIF image."},
	{Code: "ERROR_PAGEURL", Class: ClassPermanent, Where: InPHP, FromGuide: true,
		Meaning: "The pageurl parameter is missing or invalid.",
		Fix:     "Provide the page's full URL, with https://."},
	{Code: "ERROR_BAD_PARAMETERS", Class: ClassPermanent, Where: InPHP, FromGuide: true,
		Meaning: "Required parameters are missing or malformed.",
		Fix:     "Check the method's required fields."},
	{Code: "ERROR_GOOGLEKEY", Class: ClassPermanent, Where: InPHP, FromGuide: true,
		Meaning: "The sitekey is invalid for this page.",
		Fix:     "Extract the correct sitekey from the target page."},
	{Code: "ERROR_CAPTCHAIMAGE_BLOCKED", Class: ClassPermanent, Where: InPHP, FromGuide: true,
		Meaning: "The image was blocked by moderation.",
		Fix:     "Use a different CAPTCHA image."},
	{Code: "ERROR_BAD_TOKEN_OR_PAGEURL", Class: ClassPermanent, Where: InPHP, FromGuide: true,
		Meaning: "The page URL and the token or sitekey do not match.",
		Fix:     "Reload the page and take fresh parameters."},

	// ---- The error guide: transient (in.php) ----
	{Code: "ERROR_NO_SLOT_AVAILABLE", Class: ClassTransient, Where: InPHP, FromGuide: true,
		RetryDelay: 5 * time.Second,
		Meaning:    "All workers are busy.",
		Fix:        "Nothing: retried automatically after 5 seconds."},
	{Code: "ERROR_TOO_MUCH_REQUESTS", Class: ClassTransient, Where: Both, FromGuide: true,
		BackoffMin: 3 * time.Second, BackoffMax: 10 * time.Second,
		Meaning: "A rate limit was hit.",
		Fix:     "Nothing: retried with exponential backoff (3–10 s); lower submit_rate if it recurs."},
	// The provider blocks the account for 10 s after more than 60 in.php
	// requests in 3 s: every submit must wait, not just this task's.
	{Code: "MAX_USER_TURN", Class: ClassTransient, Where: InPHP, FromGuide: true,
		RetryDelay: 10 * time.Second, Ban: 10 * time.Second,
		Meaning: "The account's queue is full (more than 60 in.php requests in 3 s).",
		Fix:     "Nothing: all submits wait 10 seconds; lower submit_rate if it recurs."},

	// ---- The error guide: account ----
	{Code: "ERROR_ZERO_BALANCE", Class: ClassAccount, Where: InPHP, FromGuide: true,
		Meaning: "The account has no funds (or no free threads).",
		Fix:     "Top up the balance, then run account-fixed."},
	{Code: "ERROR_IP_NOT_ALLOWED", Class: ClassAccount, Where: Both, FromGuide: true,
		Meaning: "This IP address is not on the account's whitelist.",
		Fix:     "Add the IP in the dashboard's settings, then run account-fixed."},
	{Code: "ERROR_IP_BANNED", Class: ClassAccount, Where: Both, FromGuide: true,
		Meaning: "This IP address is banned for abuse.",
		Fix:     "Contact the provider's support, then run account-fixed."},

	// ---- The error guide: res.php ----
	{Code: "CAPCHA_NOT_READY", Class: ClassNotReady, Where: ResPHP, FromGuide: true,
		Meaning: "The task is still being solved.",
		Fix:     "Nothing: polled again after poll_interval."},
	{Code: "ERROR_CAPTCHA_UNSOLVABLE", Class: ClassResubmit, Where: ResPHP, FromGuide: true,
		Meaning: "The workers could not solve this CAPTCHA; the task is closed.",
		Fix:     "Nothing: resubmitted as a new task, up to max_resubmits."},
	{Code: "ERROR_TOKEN_EXPIRED", Class: ClassResubmit, Where: ResPHP, FromGuide: true,
		Meaning: "The token expired before it was retrieved.",
		Fix:     "Nothing: resubmitted; lower poll_interval if it recurs."},
	// A client bug: the poll lacked action=get. The same request fails again.
	{Code: "ERROR_EMPTY_ACTION", Class: ClassPermanent, Where: ResPHP, FromGuide: true,
		Meaning: "The poll request had no action parameter.",
		Fix:     "Report a bug: polls must send action=get."},

	// ---- From the provider's docs, not in the guide ----
	// The three file codes describe the bytes sent; the same bytes fail the
	// same way, so sending them again only costs requests.
	{Code: "ERROR_WRONG_FILE_EXTENSION", Class: ClassPermanent, Where: InPHP,
		Meaning: "The image file's extension is not jpg, jpeg, png or gif.",
		Fix:     "Send a PNG, JPEG or GIF file."},
	{Code: "ERROR_ZERO_CAPTCHA_FILESIZE", Class: ClassPermanent, Where: InPHP,
		Meaning: "The image is smaller than 100 bytes.",
		Fix:     "Check the image file: it is empty or truncated."},
	{Code: "ERROR_TOO_BIG_CAPTCHA_FILESIZE", Class: ClassPermanent, Where: InPHP,
		Meaning: "The image is larger than 100 kB.",
		Fix:     "Compress or crop the image."},
	// The provider says it answers this to a malformed POST or invalid base64,
	// a fault of the request's content; a transfer cut short shows up as a
	// transport error instead, which is retried.
	{Code: "ERROR_UPLOAD", Class: ClassPermanent, Where: InPHP,
		Meaning: "The server could not read the file from the POST request.",
		Fix:     "Check the image's base64 encoding or the multipart request."},
	{Code: "ERROR_WRONG_GOOGLEKEY", Class: ClassPermanent, Where: InPHP,
		Meaning: "The googlekey parameter is blank or malformed.",
		Fix:     "Pass the page's sitekey as googlekey."},
	// Sent by the provider when an account keeps uploading unreadable images:
	// it refuses the account's uploads until a person fixes the image source,
	// and every further bad image prolongs it, so the breaker stops submits.
	{Code: "TOO_MANY_BAD_IMAGES", Class: ClassAccount, Where: InPHP,
		Meaning: "The account sent too many unrecognisable images.",
		Fix:     "Check that captured images are complete and readable, then run account-fixed."},
	// Caused by repeated requests with wrong keys from this IP. The block
	// lifts after 5 minutes, but only a corrected key stops it recurring:
	// account class (a person acts) with the ban's length.
	{Code: "IP_BANNED", Class: ClassAccount, Where: Both, Ban: 5 * time.Minute,
		Meaning: "This IP is blocked for 5 minutes after many requests with wrong keys.",
		Fix:     "Check the API key, wait 5 minutes, then run account-fixed."},
	// The proxy is the task's own parameter: this task cannot succeed with
	// it, but other tasks are unaffected.
	{Code: "ERROR_BAD_PROXY", Class: ClassPermanent, Where: Both,
		Meaning: "The task's proxy is marked bad by the provider.",
		Fix:     "Give the task a working proxy."},
	// The provider marks the proxy bad for 10 minutes after this: a resubmit
	// with the same parameters would be refused with ERROR_BAD_PROXY.
	{Code: "ERROR_PROXY_CONNECTION_FAILED", Class: ClassPermanent, Where: ResPHP,
		Meaning: "The workers could not load the CAPTCHA through the task's proxy.",
		Fix:     "Check the proxy or give the task another one."},
	// Answers to reportgood/reportbad, not to a solve: a report is final
	// either way, so there is nothing to retry.
	{Code: "ERROR_REPORT_NOT_RECORDED", Class: ClassPermanent, Where: ResPHP,
		Meaning: "The report was not recorded (too late, or the task is too old).",
		Fix:     "Nothing: report within a few minutes of the answer."},
	{Code: "ERROR_DUPLICATE_REPORT", Class: ClassPermanent, Where: ResPHP,
		Meaning: "This task was reported already.",
		Fix:     "Nothing: a task is reported once."},
	// The request came from an IP that does not match the task's registered
	// pingback address: the task's pingback parameter must change; other
	// tasks are unaffected.
	{Code: "ERROR_IP_ADDRES", Class: ClassPermanent, Where: Both,
		Meaning: "The request's IP does not match the registered pingback address.",
		Fix:     "Register the pingback address for this IP, or drop the pingback parameter."},
	// Some 2captcha-compatible services spell the not-ready answer right.
	// It means what CAPCHA_NOT_READY means: the task is paid and being
	// solved, so failing it as unknown would throw the payment away.
	{Code: "CAPTCHA_NOT_READY", Class: ClassNotReady, Where: ResPHP,
		Meaning: "The task is still being solved (the spelling some compatible services use).",
		Fix:     "Nothing: polled again after poll_interval."},
	// The method name is wrong: the same request is refused again, so
	// sending it again only costs requests.
	{Code: "ERROR_NO_SUCH_METHOD", Class: ClassPermanent, Where: InPHP,
		Meaning: "The method parameter names no method the provider knows.",
		Fix:     "Check the method's spelling (hcaptcha, userrecaptcha, turnstile, ...)."},
	// 2captcha's spelling of ERROR_WRONG_CAPTCHA_ID: no task has the id, and
	// asking again gets the same answer. A new task would be paid again, so
	// the task fails rather than resubmits, as WRONG_CAPTCHA_ID does.
	{Code: "ERROR_NO_SUCH_CAPCHA_ID", Class: ClassPermanent, Where: ResPHP,
		Meaning: "No task has this id (2captcha's spelling of ERROR_WRONG_CAPTCHA_ID).",
		Fix:     "Use the id in.php returned; submit a new task."},
	// A task parameter (GeeTest v4's captcha_id, by the official client's
	// text) is wrong: the same parameters fail the same way.
	{Code: "ERROR_CAPTCHA_ID", Class: ClassPermanent, Where: InPHP,
		Meaning: "A parameter of the task is wrong (for GeeTest v4, its captcha_id).",
		Fix:     "Take captcha_id (or the method's key parameter) again from the target page."},
	// 2captcha's "IP address is banned due to improper use of the API":
	// no waiting lifts it for certain, a person must act, and every request
	// from this IP is refused meanwhile, so the breaker stops submits.
	{Code: "ERROR_IP_BLOCKED", Class: ClassAccount, Where: Both,
		Meaning: "This IP is banned for improper use of the API.",
		Fix:     "Find what misused the API from this IP, contact support, then run account-fixed."},
	// The target site is one the provider refuses to solve: the task's
	// pageurl decides it, so this task cannot succeed, others may.
	{Code: "ERROR_DOMAIN_NOT_ALLOWED", Class: ClassPermanent, Where: InPHP,
		Meaning: "The provider does not solve CAPTCHAs of this domain.",
		Fix:     "Nothing can solve this task through this provider."},
	// The spelling of ERROR_REPORT_NOT_RECORDED the official JavaScript
	// client knows: a report is final either way, nothing to retry.
	{Code: "REPORT_NOT_RECORDED", Class: ClassPermanent, Where: ResPHP,
		Meaning: "The report was not recorded (too late, or too many reports).",
		Fix:     "Nothing: report within a few minutes of the answer."},
	// Provider-side failures: the same request usually succeeds later.
	{Code: "ERROR_SERVER_ERROR", Class: ClassTransient, Where: Both,
		Meaning: "A temporary failure on the provider's side.",
		Fix:     "Nothing: retried with backoff."},
	{Code: "ERROR_INTERNAL_SERVER_ERROR", Class: ClassTransient, Where: Both,
		Meaning: "A temporary failure on the provider's side.",
		Fix:     "Nothing: retried with backoff."},

	// ---- Rate-limit bans ----
	{Code: "ERROR: 1001", Class: ClassTransient, Where: Both, Ban: 10 * time.Minute,
		Meaning: "120 ERROR_NO_SLOT_AVAILABLE answers in a minute: blocked for 10 minutes.",
		Fix:     "Nothing: the engine waits the ban out; send fewer tasks when the provider is busy."},
	// The ban lasts 5 minutes, but its cause is an empty balance that waiting
	// does not cure: account class with the ban's length.
	{Code: "ERROR: 1002", Class: ClassAccount, Where: Both, Ban: 5 * time.Minute,
		Meaning: "120 ERROR_ZERO_BALANCE answers in a minute: blocked for 5 minutes.",
		Fix:     "Top up the balance, then run account-fixed."},
	{Code: "ERROR: 1003", Class: ClassTransient, Where: Both, Ban: 30 * time.Second,
		Meaning: "Too many ERROR_NO_SLOT_AVAILABLE answers: blocked for 30 seconds.",
		Fix:     "Nothing: the engine waits the ban out."},
	// Caused by wrong keys: the key must be corrected by a person.
	{Code: "ERROR: 1004", Class: ClassAccount, Where: Both, Ban: 10 * time.Minute,
		Meaning: "This IP is blocked after several requests with a wrong API key.",
		Fix:     "Check the API key, wait out the block, then run account-fixed."},
	{Code: "ERROR: 1005", Class: ClassTransient, Where: ResPHP, Ban: 10 * time.Minute,
		Meaning: "Too many res.php requests (over 20 × captchas + 1200): blocked for 10 minutes.",
		Fix:     "Nothing: the engine waits the ban out; raise poll_interval if it recurs."},

	// ---- The engine's own codes ----
	// Outcomes that are not a provider's answer, written into histories by
	// the engine and classified like answers, so that a task's class is
	// never "unknown" for a reason the engine itself knows.
	//
	// A request that failed below the API may go through on a second try;
	// the contract makes it transient with backoff.
	{Code: CodeTransport, Class: ClassTransient, Where: Engine,
		Meaning: "The request failed below the API: connection refused or reset, timeout, HTTP 5xx, an HTML or malformed body.",
		Fix:     "Nothing: retried with backoff; check the network or --api-url if it recurs."},
	// The provider never answered in time: polling longer is what the
	// policy forbids, so the task ends.
	{Code: CodePollTimeout, Class: ClassPermanent, Where: Engine,
		Meaning: "poll_timeout passed without an answer.",
		Fix:     "Nothing for this task; raise poll_timeout if the provider is often this slow."},
	// A person's decision, final for the task.
	{Code: CodeCancelled, Class: ClassPermanent, Where: Engine,
		Meaning: "The task was cancelled by its caller.",
		Fix:     "Nothing: submit it again if it is still wanted."},
	// The stored request no longer passes validation (written by an older
	// version, or edited): sending it again cannot help.
	{Code: CodeInvalidRequest, Class: ClassPermanent, Where: Engine,
		Meaning: "The task's request does not pass validation; it was never sent.",
		Fix:     "Submit a corrected request."},
	// The caller's own limit for the task: past it the answer is of no
	// use, and nothing more is spent on it.
	{Code: CodeDeadline, Class: ClassPermanent, Where: Engine,
		Meaning: "The task's deadline (set when it was submitted) passed before it had an answer; nothing more was sent for it.",
		Fix:     "Nothing for this task; give later tasks a longer deadline if the provider is often this slow."},
	// Parked because another task's account error opened the breaker: the
	// account is what a person must fix.
	{Code: CodeBreakerOpen, Class: ClassAccount, Where: Engine,
		Meaning: "The task was parked without sending because an account error opened the breaker.",
		Fix:     "Fix the account (see the code that opened the breaker), then run account-fixed."},
}

var byCode = func() map[string]Entry {
	m := make(map[string]Entry, len(catalogue))
	for _, e := range catalogue {
		m[e.Code] = e
	}
	return m
}()

// Catalogue returns every entry, in a stable order (the guide's codes first,
// then the provider's, then the bans). The slice is a copy.
func Catalogue() []Entry {
	return append([]Entry(nil), catalogue...)
}

// Codes returns every code, sorted.
func Codes() []string {
	out := make([]string, 0, len(catalogue))
	for _, e := range catalogue {
		out = append(out, e.Code)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the entry of code. Surrounding whitespace is ignored.
func Lookup(code string) (Entry, bool) {
	e, ok := byCode[strings.TrimSpace(code)]
	return e, ok
}

// Classify returns the class of code, ClassUnknown when the catalogue does
// not hold it.
func Classify(code string) Class {
	if e, ok := Lookup(code); ok {
		return e.Class
	}
	return ClassUnknown
}

// IsCode reports whether s is a provider code rather than an answer (a
// token or an image's text): a catalogue code, or any text of the ERROR
// family ("ERROR_..." or "ERROR: ..."), which the provider reserves for
// codes. Nothing else is a code, however it looks: an image's answer may be
// an upper-case word with an underscore ("AB_CD").
func IsCode(s string) bool {
	s = strings.TrimSpace(s)
	if _, ok := byCode[s]; ok {
		return true
	}
	return strings.HasPrefix(s, "ERROR_") || strings.HasPrefix(s, "ERROR: ")
}
