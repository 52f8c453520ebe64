//go:build !linux

package boltstore

import "go.etcd.io/bbolt"

// dropMapped does nothing outside Linux: see unmap_linux.go.
func dropMapped(*bbolt.Tx) {}
