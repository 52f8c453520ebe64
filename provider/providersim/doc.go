// Package providersim simulates the CaptchaAI (2captcha-compatible) in.php /
// res.php API, for tests, the demo, benchmarks and users' own bots. It never
// talks to the real provider.
//
// # Basics
//
// A Sim is an http.Handler. Use it in process through RoundTripper (or
// Client), which calls the handler directly with no sockets, so a client
// under test can run inside a testing/synctest bubble with virtual time; or
// on a loopback listener with Start, shaped like httptest.Server (URL,
// Client, Close). Every draw — errors, solve times, faults, tokens — comes
// from seeded generators under one lock: the same Config.Seed and the same
// sequence of requests give the same answers. There are no background
// goroutines: readiness is computed from the accept time when a poll asks.
//
// # Protocol
//
// in.php (GET or POST; multipart for method=post) takes key, method and the
// method's parameters, and answers "OK|ID" or the code ("ERROR_..."), or
// with json=1 {"status":1,"request":"ID"} / {"status":0,"request":"ERROR_..."}.
// Required parameters: post (multipart file), base64 (body), userrecaptcha
// (googlekey, pageurl), hcaptcha and turnstile (sitekey, pageurl),
// funcaptcha (publickey, pageurl), geetest (gt, challenge, pageurl),
// geetest_v4 (captcha_id, pageurl); any other method name is accepted with
// no required parameters. A missing parameter is ERROR_BAD_PARAMETERS, a
// missing or non-http(s) pageurl ERROR_PAGEURL, a blank googlekey
// ERROR_WRONG_GOOGLEKEY and a malformed one ERROR_GOOGLEKEY. Images under
// 100 bytes are ERROR_ZERO_CAPTCHA_FILESIZE, over 100 kB
// ERROR_TOO_BIG_CAPTCHA_FILESIZE, neither PNG, JPEG nor GIF
// ERROR_IMAGE_TYPE_NOT_SUPPORTED, bad base64 ERROR_UPLOAD. A key that is not
// 32 hex characters is ERROR_WRONG_USER_KEY; with Config.Key set, another key
// is ERROR_KEY_DOES_NOT_EXIST.
//
// res.php takes action=get with id (CAPCHA_NOT_READY until the task's solve
// time has passed, then "OK|TOKEN", or the task's drawn error such as
// ERROR_CAPTCHA_UNSOLVABLE) or ids=a,b,c (the answers '|'-joined in order;
// with json=1 status 1 and the joined string as request); action=get2
// ("OK|TOKEN|COST"; JSON adds "price"); action=getbalance; and
// action=reportgood / reportbad (OK_REPORT_RECORDED, ERROR_DUPLICATE_REPORT,
// or ERROR_REPORT_NOT_RECORDED for a task without an answer). Unknown ids are
// ERROR_WRONG_CAPTCHA_ID, malformed ones ERROR_WRONG_ID_FORMAT, a missing or
// unknown action ERROR_EMPTY_ACTION. Provider ids are numeric and
// increasing. A token is fetched as often as asked (until Config.TokenTTL,
// if set); tokens never start with ERROR or CAPCHA_ and never hold '|'.
//
// An accepted task is charged its method's cost (Config.Costs, DefaultCost);
// a submit the balance cannot pay is ERROR_ZERO_BALANCE.
//
// # Rate rules
//
// As in production, unless Config.NoRateRules: more than 60 in.php requests
// in 3 s answer MAX_USER_TURN and block in.php for 10 s; more res.php
// requests in the last hour than 20 × the captchas accepted in that hour +
// 1200 answer "ERROR: 1005" and block res.php for 10 minutes (counted in
// one-minute buckets); 120 ERROR_NO_SLOT_AVAILABLE answers in a minute block
// in.php with "ERROR: 1001" for 10 minutes, 120 ERROR_ZERO_BALANCE answers
// with "ERROR: 1002" for 5 minutes. Blocks are divided by Config.Speed.
//
// # Faults and the ledger
//
// Config.Faults injects transport faults per kind of request: a 500, an
// HTML 502 page (both before the request is processed), a dropped connection
// and a slow answer (both after: a submit is charged, and the client cannot
// know it). Ledger returns a copy of what happened: requests by kind,
// answers by code, the charged tasks with their polls, bans and faults, and
// the fingerprints of submitted content, so a test can tell an orphaned task
// (Ledger.Orphaned) or a captcha paid for twice (Ledger.Duplicates).
//
// # Caveats
//
// Solve times, rate windows and bans follow Config.Now; the Slow fault's
// hold uses real timers (virtual inside a synctest bubble). In a bubble, a
// loop of requests that never waits sends them all at the same instant, so
// 61 submits trip MAX_USER_TURN: pace them, or set NoRateRules.
package providersim
