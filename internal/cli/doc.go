// Package cli is the captchafsm command: one cobra command per file, wired
// to the engine, the bbolt store, the provider client and the simulator.
//
// # Basics
//
// NewRoot builds the whole command tree without side effects, so that a
// documentation generator can walk every command's help; Main runs it on a
// process's arguments and streams, with SIGINT and SIGTERM cancelling the
// command's context; Execute runs a tree built by NewRoot and returns the
// exit status. Options replaces the process's environment and terminal
// detection in tests.
//
// Configuration comes from flags, then the environment (CAPTCHAFSM_DB,
// CAPTCHAFSM_API_URL, CAPTCHAFSM_API_KEY), then defaults. The API key is
// read from the environment or --key-file only, checked before anything is
// sent, and never printed.
//
// # Exit status
//
// solve, run and resume exit 0 when every task is Done, 1 on bad input
// (nothing sent), 2 when some task Failed, 3 when some task needs an
// account fix (over 2), 4 when the database failed to record paid answers
// for too long (the message names them; resume records each as possibly
// charged), and 130 when interrupted (the tasks stay in the database for
// resume). Every other command exits 0 or 1; replay exits 2
// on a mismatch. Errors are one line on stderr naming the flag, field,
// line or file at fault.
//
// # Caveats
//
// demo --crash starts this program again (os.Executable, or
// Options.Executable) as its child engine, with the hidden command
// demo-engine and the simulator's key in the environment. A test binary
// standing in for captchafsm must run Main when EnvDemoChild is set.
package cli
