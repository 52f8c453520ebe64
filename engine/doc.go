// Package engine drives captcha solves as persisted state machines: the
// library a bot embeds.
//
// # Basics
//
// A bot usually starts from the module's root package (captchafsm.Open:
// a bbolt file, the provider or the simulator, and an engine in one
// call). Open an Engine yourself to choose the store: on a
// persist.Store (persist/boltstore is the embedded default;
// persist/pgstore, with Config.Fleet, lets engines on many hosts share
// one database) and an API (a *provider.Client; in tests the simulator of
// provider/providersim). Submit stores a task and returns its id at once —
// the task is durable when Submit returns — and Wait returns its outcome;
// Solve does both. Every move of a task is checked against the machine of
// package fsm and committed to the store before the engine acts on it, so
// Get, List and History audit everything that happened; each returns the
// one view of a task, Task.
//
// # Requests
//
// A Request names its method and parameters and, optionally, the task's
// Ref (the caller's name for it: submitting the same request under it
// again attaches to the stored task, which Enqueue reports; IfRefExists
// RefUnique refuses a stored ref), a Deadline (the task ends Failed with
// DEADLINE_EXCEEDED when it passes), a Priority (due submits go out
// highest first) and its own MaxRetries and MaxResubmits. The options are
// stored with the task and hold across restarts. Wait, Get, History and
// Cancel take a ref wherever they take an id: a bot that restarted
// collects what it submitted by ref.
//
// # Callbacks
//
// Config.OnTransition is called once each move is on disk, from the
// goroutine that committed it, so concurrently (a batched poll commits
// its answers in parallel); it must be safe for concurrent use and quick.
// Subscribe delivers the same moves through a buffered channel and drops
// those a full channel cannot take.
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
//     sending. Polls of accepted tasks go on. While it is open, a free
//     getbalance every Policy.AccountProbeInterval checks the account, and
//     once it is usable the engine releases the parked tasks itself (the
//     half-open breaker); AccountFixed releases them at once.
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
