//go:build !unix

package boltstore

import "os"

// diskUsage returns the file's size where the system does not tell its
// allocated blocks.
func diskUsage(fi os.FileInfo) int64 { return fi.Size() }
