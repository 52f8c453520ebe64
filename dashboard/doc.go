// Package dashboard serves an engine's tasks to people and programs: a small
// JSON API, server-rendered HTML pages and the Prometheus metrics.
//
// # Basics
//
// New returns an http.Handler over a persist.Store and, optionally, the
// engine that drives it and its metrics:
//
//	POST /api/tasks              submit {"method", "params", "ref"} (201, or 200 when the ref exists)
//	GET  /api/tasks?state=S      tasks in creation order (the shape of `captchafsm list --json`);
//	                             &order=newest reverses it, &limit=N&after=ID pages through it
//	GET  /api/tasks/{id}         one task, by id or ref, with its params redacted;
//	                             ?wait=30s waits (at most MaxWait) until the engine is done with it
//	GET  /api/tasks/{id}/history the task and its transitions (the shape of `captchafsm history --json`)
//	GET  /api/summary            tasks per state and the breaker
//	POST /api/account-fixed      close the breaker, release NeedsAccountFix tasks
//	GET  /metrics                the metrics.Metrics, when set
//	GET  /                       counts per state, the breaker and its button, a filterable task list
//	GET  /tasks/{id}             a task's timeline and the state diagram, its current state highlighted
//
// Since bbolt admits one process at a time, this API is how a person
// inspects a database that a running engine holds.
//
// The state diagram is SVG drawn on the server from transitions.Table; the
// pages need no script and no file from elsewhere (html/template, embedded
// CSS). Proxy logins and passwords are shown as *** (provider.RedactProxy),
// image bodies by their size.
//
// # Security
//
// With Config.Token set, every request needs "Authorization: Bearer
// <token>" or the session cookie that opening any page with ?token=<token>
// sets (HttpOnly, SameSite=Strict, derived from the token); both are
// compared in constant time. Without a token only loopback host names are
// served, which defeats DNS rebinding. Writes that a browser sends for
// another site are refused (http.CrossOriginProtection), the JSON API
// takes only application/json bodies, and pages carry a strict
// Content-Security-Policy.
//
// # Caveats
//
// The index lists the newest MaxListed tasks that match; the JSON API lists
// all, written as the store reads them (flat memory whatever the store
// holds). Counts and lists are read from the store at each request; a
// search reads every task of the chosen state.
package dashboard
