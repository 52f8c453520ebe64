// Package captchafsm solves CAPTCHAs through CaptchaAI or 2captcha (the
// in.php and res.php API) with every solve a persisted state machine: a
// crash or a restart loses no task and pays for none twice, every error
// is handled as the provider's error guide says, and every move of a task
// is on disk, to audit and replay.
//
// # Basics
//
// Open is the one call a bot needs: it opens (or creates) a bbolt file,
// resumes the unfinished tasks in it, and returns a Solver, an
// engine.Engine with its store. Solve submits a request and waits for its
// answer; Submit returns at once (the task is durable) and Wait collects
// it, by id or by the request's ref, in this run or the next:
//
//	solver, err := captchafsm.Open(ctx, "bot.db", captchafsm.Options{})
//	...
//	defer solver.Close()
//	res, err := solver.Solve(ctx, captchafsm.Turnstile{SiteKey: key, PageURL: page}.Request())
//
// The key comes from Options.APIKey or CAPTCHAFSM_API_KEY, the endpoint
// from Options.BaseURL or CAPTCHAFSM_API_URL, else CaptchaAI's. With
// Options.Simulator the project's simulator answers instead, in process:
// no key, no network, its clock as fast as its Speed (the examples use
// it).
//
// # Requests
//
// Typed requests (RecaptchaV2, RecaptchaV3, RecaptchaEnterprise, HCaptcha,
// Turnstile, FunCaptcha, GeeTest, GeeTestV4, Image) build the
// engine.Request of the methods the client checks; every other method is
// spelt as engine.Request{Method, Params}. A request's own fields say the
// rest: Ref (the bot's name for the task; submitting the same request
// with it again attaches to the stored task), IfRefExists, Deadline,
// Priority, MaxRetries, MaxResubmits, and Labels (the bot's own data about
// the task, kept with it across restarts and never sent to the provider).
//
// # Caveats
//
// The bbolt file admits one process: a second Open on it fails with
// persist.ErrLocked. Bots on many hosts share a PostgreSQL database
// instead: open persist/pgstore and an engine.Engine with Fleet set. An
// in-process simulator forgets its tasks when the process ends, so a bot
// that must survive a crash against the simulator runs `captchafsm
// simulate` beside it and points CAPTCHAFSM_API_URL at it.
package captchafsm
