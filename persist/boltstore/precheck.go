package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// The on-disk layout of a bbolt file that precheck reads: the page header
// and the meta page (go.etcd.io/bbolt/internal/common), in the machine's
// byte order as bbolt writes them.
const (
	boltMagic     = 0xED0CDAED
	boltVersion   = 2
	pageHeaderLen = 16 // id u64, flags u16, count u16, overflow u32
	metaLen       = 64 // magic, version, pageSize, flags u32; root, sequence, freelist, pgid, txid, checksum u64
	metaSumLen    = 56 // the bytes the checksum covers

	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10
	noFreelist       = ^uint64(0)
	minPageSize      = 512
	maxPageSize      = 1 << 20
)

// boltMeta is a decoded bbolt meta page.
type boltMeta struct {
	pageSize                   uint64
	root, freelist, pgid, txid uint64
}

// errPrecheck marks a file precheck refuses; the message says why.
var errPrecheck = errors.New("precheck")

// precheck reads the header of an existing bbolt file and checks what
// bbolt.Open trusts blindly: that the file holds every page the meta
// counts, and that the freelist and root pages are where the meta says.
// bbolt panics on such damage inside Open, where the panic cannot be
// recovered without leaking the file's memory map (and with it the lock).
// An empty or missing file passes: Open creates it.
func precheck(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	size := st.Size()
	if size == 0 {
		return nil
	}
	m0, err0 := readMeta(f, 0, 0)
	pageSize := uint64(4096)
	if err0 == nil {
		pageSize = m0.pageSize
	} else if ps := os.Getpagesize(); ps > 0 {
		pageSize = uint64(ps)
	}
	m1, err1 := readMeta(f, int64(pageSize), 1)
	var m boltMeta
	switch {
	case err0 != nil && err1 != nil:
		notBolt := func(err error) bool {
			return errors.Is(err, errNotBolt) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		}
		if notBolt(err0) && notBolt(err1) {
			return fmt.Errorf("%w: not a bbolt file (no bbolt header in its %d bytes)", errPrecheck, size)
		}
		return fmt.Errorf("%w: both bbolt header pages are damaged (%v; %v)", errPrecheck, err0, err1)
	case err0 != nil:
		m = m1
	case err1 != nil:
		m = m0
	case m1.txid > m0.txid:
		m = m1
	default:
		m = m0
	}
	if m0.pageSize != 0 && m1.pageSize != 0 && m0.pageSize != m1.pageSize {
		return fmt.Errorf("%w: the header pages disagree on the page size", errPrecheck)
	}
	if m.pgid > uint64(size)/m.pageSize {
		return fmt.Errorf("%w: the file is truncated (%d bytes, its %d pages need %d)", errPrecheck, size, m.pgid, m.pgid*m.pageSize)
	}
	if m.freelist != noFreelist {
		if err := checkPage(f, m, m.freelist, freelistPageFlag); err != nil {
			return fmt.Errorf("%w: freelist page: %v", errPrecheck, err)
		}
	}
	if err := checkPage(f, m, m.root, branchPageFlag|leafPageFlag); err != nil {
		return fmt.Errorf("%w: root page: %v", errPrecheck, err)
	}
	return nil
}

var errNotBolt = errors.New("no bbolt magic")

// errLockTimeout: lockFile gave up waiting.
var errLockTimeout = errors.New("lock timeout")

// readMeta reads and validates the meta page at off, whose page id is id.
func readMeta(r io.ReaderAt, off int64, id uint64) (boltMeta, error) {
	var buf [pageHeaderLen + metaLen]byte
	if _, err := r.ReadAt(buf[:], off); err != nil {
		return boltMeta{}, fmt.Errorf("header page %d: %w", id, err)
	}
	le := binary.NativeEndian
	h, b := buf[:pageHeaderLen], buf[pageHeaderLen:]
	if le.Uint32(b[0:]) != boltMagic {
		return boltMeta{}, fmt.Errorf("header page %d: %w", id, errNotBolt)
	}
	if v := le.Uint32(b[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("header page %d: bbolt format version %d, want %d", id, v, boltVersion)
	}
	sum := fnv.New64a()
	sum.Write(b[:metaSumLen])
	if sum.Sum64() != le.Uint64(b[metaSumLen:]) {
		return boltMeta{}, fmt.Errorf("header page %d: checksum mismatch", id)
	}
	if le.Uint64(h[0:]) != id || le.Uint16(h[8:])&metaPageFlag == 0 {
		return boltMeta{}, fmt.Errorf("header page %d: not a meta page", id)
	}
	m := boltMeta{
		pageSize: uint64(le.Uint32(b[8:])),
		root:     le.Uint64(b[16:]),
		freelist: le.Uint64(b[32:]),
		pgid:     le.Uint64(b[40:]),
		txid:     le.Uint64(b[48:]),
	}
	if m.pageSize < minPageSize || m.pageSize > maxPageSize || m.pageSize&(m.pageSize-1) != 0 {
		return boltMeta{}, fmt.Errorf("header page %d: page size %d", id, m.pageSize)
	}
	if m.pgid < 2 {
		return boltMeta{}, fmt.Errorf("header page %d: %d pages", id, m.pgid)
	}
	return m, nil
}

// checkPage checks that page id lies within the file's pages, says it is
// page id, and has one of the flags.
func checkPage(r io.ReaderAt, m boltMeta, id uint64, flags uint16) error {
	if id < 2 || id >= m.pgid {
		return fmt.Errorf("page %d is outside the file's %d pages", id, m.pgid)
	}
	var h [pageHeaderLen]byte
	if _, err := r.ReadAt(h[:], int64(id*m.pageSize)); err != nil {
		return fmt.Errorf("page %d: %w", id, err)
	}
	le := binary.NativeEndian
	if got := le.Uint64(h[0:]); got != id {
		return fmt.Errorf("page %d says it is page %d", id, got)
	}
	if f := le.Uint16(h[8:]); f&flags == 0 {
		return fmt.Errorf("page %d has type %#x", id, f)
	}
	if overflow := uint64(le.Uint32(h[12:])); id+overflow >= m.pgid {
		return fmt.Errorf("page %d overflows past the file's %d pages", id, m.pgid)
	}
	return nil
}
