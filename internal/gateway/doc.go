// Package gateway serves the CaptchaAI / 2captcha in.php + res.php
// protocol in front of an engine, so that bots in any language — with the
// clients they already have, changed only in their base URL — get what the
// engine gives: durable tasks, batched polls, the account breaker, bans
// waited out, resubmits, history and the dashboard.
//
// # Basics
//
// Open a Gateway with an engine configuration and the local clients (a
// name and a 32-hex key each); it opens the engine, which resumes the
// store's unfinished tasks. The Gateway is an http.Handler for in.php and
// res.php (package provider/protocol parses and renders; the Gateway is its
// Backend):
//
//   - in.php checks the task as the provider and the engine do (a bad one
//     gets the provider's code and creates nothing), stores it durably
//     through engine.Submit, and answers a numeric id. The task's engine
//     ref is "gw:<client>:<id>" (Ref): a restarted gateway finds every id
//     it gave, and the dashboard shows the client's name.
//   - res.php?action=get (id= or ids=) answers from memory, fed by the
//     engine's transitions, never by a request upstream:
//     CAPCHA_NOT_READY while the task is Submitting, in Backoff, Polling
//     or Resubmitting (transient errors and resubmits are the engine's
//     business), the token when Done, the final code when Failed and the
//     account code while parked in NeedsAccountFix (AnswerRules lists the
//     codes translated for clients).
//   - getbalance asks the provider (once per Config.BalanceTTL), reports
//     go to the provider id of the task's last submit, get2 asks its price
//     once, and pingback URLs (loopback or allowed hosts) get the answer
//     when a task ends.
//
// Local keys never go upstream and the upstream key never reaches a
// client: the engine's API holds it. Keys are never logged.
//
// # Caveats
//
// A retry of an in.php request whose answer was lost (the client's
// connection closed before the gateway answered) gets the same id within
// Config.DedupWindow, not a second paid task; that memory does not survive
// a restart. A task's pingback URL is kept with it (the label
// LabelPingback) and survives a restart; the URLs registered with
// add_pingback do not. Reports are recorded in the task's history
// (Engine.Report), so a second one is refused after a restart too.
package gateway
