// Package engine drives captcha solves as persisted state machines: the
// library a bot embeds.
//
// # Basics
//
// Open an Engine on a persist.Store (persist/boltstore is the embedded
// default) and an API (a *provider.Client; in tests the simulator of
// provider/providersim). Submit stores a task and returns its id at once — the
// task is durable when Submit returns — and Wait returns its outcome; Solve
// does both. Every move of a task is checked against the machine of package
// fsm and committed to the store before the engine acts on it, so Get,
// List and History audit everything that happened.
//
// # Decisions
//
// Each answer of the provider is classified by package transitions:
//
//   - transient (NO_SLOT, transport trouble...): Backoff for the code's own
//     delay, else exponential backoff with jitter, then submit again; Failed
//     after Policy.MaxRetries retries.
//   - permanent: Failed; the task is never sent again.
//   - account (ZERO_BALANCE...): NeedsAccountFix, and the breaker stops every
//     submit of the engine — tasks waiting to submit are parked without
//     sending — until AccountFixed. Polls of accepted tasks go on.
//   - not ready: poll again after PollInterval; Failed with POLL_TIMEOUT
//     after PollTimeout.
//   - resubmit (UNSOLVABLE, TOKEN_EXPIRED): a new provider task with the
//     same parameters, up to MaxResubmits.
//   - bans (ERROR: 1001–1005, MAX_USER_TURN): the whole engine waits the ban
//     out; no task is failed or charged a retry for it.
//   - unknown codes: Failed, with the raw code kept.
//
// # Scale
//
// One scheduler goroutine orders tasks by next-action time and hands due
// work to a pool of Policy.Concurrency workers; no goroutine sleeps per
// task. Polls due within a short window go out together as one
// res.php?ids= request. In.php requests are bounded by Policy.SubmitRate and
// a 3-second window under the provider's 60-request rule, and polls by the
// provider's hourly budget of 20 × captchas + 1200.
//
// # Crashes
//
// Open resumes every non-terminal task where it was, honouring its persisted
// next-action time. The intent to send in.php is committed before the
// request leaves and the provider's id the moment it is accepted; a task
// found between the two on resume is recorded as possibly charged in its
// history, then submitted again — never silently.
package engine
