package engine

import "time"

// SetReleaseDelay makes every release wait d first (virtual time inside a
// synctest bubble), widening the window in which a worker has moved a task
// but not yet let go of it. Call it before Open; call restore after Close.
func SetReleaseDelay(d time.Duration) (restore func()) {
	testHookRelease = func() { <-time.After(d) }
	return func() { testHookRelease = nil }
}
