//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package boltstore

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// lockRetry is how often lockFile tries again, as bbolt does.
const lockRetry = 50 * time.Millisecond

// lockFile takes the exclusive lock bbolt takes on path, waiting up to
// timeout, so precheck reads a file no other process is writing. It
// returns the release function; errLockTimeout when the lock stayed taken.
func lockFile(path string, timeout time.Duration) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, err
		}
		if !time.Now().Before(deadline) {
			_ = f.Close()
			return nil, errLockTimeout
		}
		time.Sleep(min(lockRetry, time.Until(deadline)))
	}
}
