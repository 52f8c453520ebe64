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
// The protocol itself — parsing every shape of request clients send
// (query, urlencoded, multipart, JSON as application/json or text/plain),
// CORS and header_acao, the provider's checks of a task, the answer
// formats — is package provider/protocol's; the simulator is its Backend,
// and docs/protocol.md lists every rule with its source. What the
// simulator decides:
//
// in.php accepts a checked task and answers its numeric id ("OK|ID"), or
// the error mix's code, or ERROR_ZERO_BALANCE when the balance cannot pay
// the method's cost (Config.Costs, DefaultCost). Methods the provider does
// not document are ERROR_NO_SUCH_METHOD and never charged. A task with
// pingback=URL needs the URL's address registered first
// (res.php?action=add_pingback&addr=URL, loopback URLs only), else
// ERROR_IP_ADDRES; when the task ends, its answer is POSTed there as
// id=ID&code=ANSWER.
//
// res.php takes action=get with id (CAPCHA_NOT_READY until the task's
// solve time has passed, then "OK|TOKEN", or the task's drawn error such
// as ERROR_CAPTCHA_UNSOLVABLE) or ids=a,b,c (the answers '|'-joined in
// order); action=get2 ("OK|TOKEN|COST"; JSON adds "price");
// action=getbalance; action=reportgood / reportbad (OK_REPORT_RECORDED,
// ERROR_DUPLICATE_REPORT, or ERROR_REPORT_NOT_RECORDED for a task without
// an answer); add_pingback, get_pingback and del_pingback. Unknown ids are
// ERROR_WRONG_CAPTCHA_ID. Provider ids are numeric and increasing. A token
// is fetched as often as asked (until Config.TokenTTL, if set); tokens
// never start with ERROR and never hold '|'. GeeTest answers carry the
// fields clients split: "challenge:…,validate:…,seccode:…" in plain text,
// {"geetest_challenge":…,…} with json=1 (v4: captcha_id, lot_number,
// pass_token, gen_time, captcha_output).
//
// Keys: any well-formed key (32 hex characters) is accepted unless
// Config.Key or Config.Keys name the keys that exist; another well-formed
// key is ERROR_KEY_DOES_NOT_EXIST, a malformed one ERROR_WRONG_USER_KEY.
//
// # Rate rules
//
// As in production, unless Config.NoRateRules (the figures are
// provider/limits.go's, the ban lengths the catalogue's): more than 60
// in.php requests in 3 s answer MAX_USER_TURN and block in.php for 10 s;
// more res.php requests in the last hour than 20 × the captchas accepted in
// that hour + 1200 answer "ERROR: 1005" and block res.php for 10 minutes
// (counted in one-minute buckets); 120 ERROR_NO_SLOT_AVAILABLE answers in a
// minute block in.php with "ERROR: 1001" for 10 minutes, 120
// ERROR_ZERO_BALANCE answers with "ERROR: 1002" for 5 minutes; 20 answers
// to a wrong or unknown key from one IP address within a minute ban that
// address with IP_BANNED for 5 minutes. Blocks are divided by Config.Speed.
//
// With Config.PollTiming (on by default in `captchafsm simulate`), the
// documented poll timing is enforced too: a task polled (action=get) sooner
// than 5 s after its submit (10 s for token methods), or sooner than 5 s
// after its last poll, is answered ERROR_TOO_MUCH_REQUESTS with an
// error_text saying so; the answer waits for a poll that keeps the rules.
// The minimums are divided by Config.Speed.
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
// hold and pingbacks use real timers (virtual inside a synctest bubble).
// Close stops pending pingbacks; a Sim that never sent one needs no Close. In a bubble, a
// loop of requests that never waits sends them all at the same instant, so
// 61 submits trip MAX_USER_TURN: pace them, or set NoRateRules.
package providersim
