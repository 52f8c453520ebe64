//go:build linux

package boltstore

import (
	"syscall"

	"go.etcd.io/bbolt"
)

// dropMapped tells the kernel that this process no longer needs the pages
// of the file it has mapped (MADV_DONTNEED). bbolt maps the whole file
// read-only and shared, so the pages stay in the page cache and the next
// read maps them again; what goes is their count in the process's
// resident set. A scan of a large file calls it between pages: the tasks
// of a file are spread over all of it, so without it a million-task
// listing would keep gigabytes of the file resident. The caller holds a
// transaction, so the mapping cannot be replaced meanwhile. Best effort:
// an error changes nothing but memory.
func dropMapped(tx *bbolt.Tx) {
	size := tx.Size()
	if size <= 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, tx.DB().Info().Data, uintptr(size), syscall.MADV_DONTNEED)
}
