// Package states holds the seven states of a captchafsm solve.
//
// It is the leaf of the module: it imports nothing of ours, and every other
// package names states through it. The names are part of the product
// contract: the store, the CLI and scripts rely on them.
//
//	Submitting → Backoff → Polling → Resubmitting → Done | Failed | NeedsAccountFix
//
// Done and Failed are terminal. NeedsAccountFix waits for a person.
package states
