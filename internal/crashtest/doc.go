// Package crashtest proves captchafsm's promise end to end: a bot loses no
// task and pays for nothing it is not told about, whatever happens to the
// process, the disk, the provider or the input. See docs/reliability.md
// for every guarantee, the test that holds it and the figures measured.
//
// The package's one exported function, Check, holds a store's tasks and
// histories against the state machine and against the simulator's ledger
// (what the provider saw and charged); the tests drive the real pieces
// into trouble and call it:
//
//   - crash_test.go: the built captchafsm binary runs a batch against a
//     simulator served by the test process and is killed with SIGKILL
//     again and again (at random moments, while the provider holds one of
//     its requests, right after an in.php answer arrives and inside a
//     store commit, the last two through the CLI's test-only failpoints,
//     CAPTCHAFSM_FAILPOINT), restarted with resume each time;
//   - storefault_test.go: commits that fail, commits that succeed but
//     report failure (an fsync error after the write), and a full disk (a
//     real bbolt file on a tiny tmpfs, when the test runs as root);
//   - corrupt_test.go: truncated and damaged database files through the CLI;
//   - secrets_test.go: a recognisable key through every CLI output, the
//     database file and every error, and proxy credentials redacted;
//   - load_test.go: 10,000 tasks through one engine with the default error
//     mix, on virtual time.
//
// # Running the long versions
//
// By default (and in .ci/run) each test runs a cut-down version that ends
// well within a minute. The long versions are gated by environment
// variables:
//
//	CAPTCHAFSM_CRASH_FULL=1 go test -run '^TestCrashHarness$' -v -timeout 30m ./internal/crashtest
//	CAPTCHAFSM_LOAD_FULL=1  go test -run '^TestLoad$' -v ./internal/crashtest
package crashtest
