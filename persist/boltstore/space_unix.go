//go:build unix

package boltstore

import (
	"os"
	"syscall"
)

// diskUsage returns the bytes of the blocks allocated to the file.
func diskUsage(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
