// Package npmtest holds no Go code: driver.js drives the two npm clients
// of the provider's API — the official @2captcha/captcha-solver and the
// community 2captcha package — against `captchafsm simulate` and, with
// MODE=gateway, through `captchafsm gateway` (every method returns a token
// though the provider answers NO_SLOT and UNSOLVABLE often, and solves in
// flight survive a SIGKILL and restart of the gateway); snippets.js runs
// the JavaScript snippets of the README and docs/gateway.md as written
// against the same gateway; and its Go test
// runs .ci/npm-clients.sh, which installs them into a temporary
// directory, starts the simulators and runs the driver. CI runs the script
// itself (.ci/run), and sets CAPTCHAFSM_NPM_CLIENTS=done so that go test
// does not run it twice.
package npmtest
