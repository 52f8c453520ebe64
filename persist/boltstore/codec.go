package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
)

// encodingV1 is the first byte of every stored value: a version for what
// follows, so a later captchafsm can change the encoding of one kind of
// value without migrating the whole file. In version 1 a CRC-32C of the
// JSON (4 bytes, big-endian) comes next, then the JSON: bbolt checks no
// data, and a flipped bit in a token or a time must not pass unseen.
const encodingV1 byte = 1

// headerLen is the length of a version 1 value's header.
const headerLen = 5

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errDecode is matched by every decoding failure of a stored value.
var errDecode = errors.New("boltstore: damaged stored value")

// decodeError is a value that cannot be decoded. It matches errDecode, and
// persist.ErrNotOurs for damage or persist.ErrNewerSchema for a value of a
// newer encoding.
type decodeError struct {
	msg  string
	kind error
}

func (e *decodeError) Error() string {
	if e.kind == persist.ErrNewerSchema {
		return "boltstore: stored value of a newer encoding: " + e.msg
	}
	return errDecode.Error() + ": " + e.msg
}

func (e *decodeError) Unwrap() []error { return []error{errDecode, e.kind} }

func damaged(format string, args ...any) error {
	return &decodeError{msg: fmt.Sprintf(format, args...), kind: persist.ErrNotOurs}
}

// encodeTask returns the stored form of t: its fields without Params, which
// live in their own bucket.
func encodeTask(t *persist.Task) ([]byte, error) {
	c := *t
	c.Params = nil
	return encode("task", &c)
}

// decodeTask decodes a value of the tasks bucket and checks the fields the
// store depends on.
func decodeTask(b []byte) (*persist.Task, error) {
	var t persist.Task
	if err := decode("task", b, &t); err != nil {
		return nil, err
	}
	switch {
	case t.ID == "":
		return nil, damaged("task without id")
	case !t.State.Valid():
		return nil, damaged("task %s has no state", t.ID)
	case t.Seq == 0:
		return nil, damaged("task %s has seq 0", t.ID)
	case t.Params != nil:
		// The tasks bucket never holds params; a value that does was not
		// written by this store.
		return nil, damaged("task %s holds params", t.ID)
	}
	return &t, nil
}

// encodeRecord returns the stored form of a history record.
func encodeRecord(r *persist.Record) ([]byte, error) { return encode("record", r) }

// decodeRecord decodes a value of a history bucket.
func decodeRecord(b []byte) (persist.Record, error) {
	var r persist.Record
	if err := decode("record", b, &r); err != nil {
		return persist.Record{}, err
	}
	switch {
	case r.Seq == 0:
		return persist.Record{}, damaged("record with seq 0")
	case !r.To.Valid():
		return persist.Record{}, damaged("record %d has no target state", r.Seq)
	case r.Event == "":
		return persist.Record{}, damaged("record %d has no event", r.Seq)
	}
	return r, nil
}

// encodeParams returns the stored form of a task's params.
func encodeParams(p map[string]string) ([]byte, error) {
	if p == nil {
		p = map[string]string{}
	}
	return encode("params", p)
}

// decodeParams decodes a value of the params bucket; an empty map decodes
// to nil, as the task was created.
func decodeParams(b []byte) (map[string]string, error) {
	var p map[string]string
	if err := decode("params", b, &p); err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, nil
	}
	return p, nil
}

func encode(what string, v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write(make([]byte, headerLen))
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("boltstore: encode %s: %w", what, err)
	}
	b := buf.Bytes()
	b = b[:len(b)-1] // Encode's trailing newline
	b[0] = encodingV1
	binary.BigEndian.PutUint32(b[1:], crc32.Checksum(b[headerLen:], crcTable))
	return b, nil
}

func decode(what string, b []byte, v any) error {
	switch {
	case len(b) == 0:
		return damaged("empty %s", what)
	case b[0] > encodingV1:
		return &decodeError{kind: persist.ErrNewerSchema,
			msg: fmt.Sprintf("%s has encoding version %d, this program reads %d: upgrade captchafsm", what, b[0], encodingV1)}
	case b[0] != encodingV1:
		return damaged("%s has encoding version %d", what, b[0])
	case len(b) < headerLen:
		return damaged("%s of %d bytes", what, len(b))
	}
	if got, want := crc32.Checksum(b[headerLen:], crcTable), binary.BigEndian.Uint32(b[1:]); got != want {
		return damaged("%s fails its checksum (%08x, stored %08x)", what, got, want)
	}
	if err := json.Unmarshal(b[headerLen:], v); err != nil {
		return damaged("%s: %v", what, err)
	}
	return nil
}

// seqKey is the key of a history record: its seq, big-endian, so records
// sort in sequence order.
func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

// indexKey is the key of a task in the by-state index: state, 0x00, id.
// States hold no 0x00, so the first 0x00 splits the key.
func indexKey(s states.State, id string) []byte {
	k := make([]byte, 0, len(s)+1+len(id))
	k = append(k, s...)
	k = append(k, 0)
	return append(k, id...)
}

// indexPrefix is the prefix of every index key of state s.
func indexPrefix(s states.State) []byte { return append([]byte(s), 0) }

// splitIndexKey returns the state and id of an index key.
func splitIndexKey(k []byte) (states.State, string, error) {
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return "", "", damaged("index key %q has no separator", k)
	}
	s := states.State(k[:i])
	if !s.Valid() {
		return "", "", damaged("index key names unknown state %q", s)
	}
	return s, string(k[i+1:]), nil
}
