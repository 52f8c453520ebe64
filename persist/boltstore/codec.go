package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

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
	// The outer State shadows the task's for the decoder, so the state is
	// read as a string and parsed once, by parseState.
	sh := struct {
		*persist.Task
		State string `json:"state"`
	}{Task: &t}
	if err := decode("task", b, &sh); err != nil {
		return nil, err
	}
	var err error
	if t.State, err = parseState(sh.State); err != nil {
		return nil, damaged("task %s: %v", t.ID, err)
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

// taskHead is what Apply's check reads of a stored task: the fields that
// decide a conflict and those Apply keeps as stored.
type taskHead struct {
	ID      string    `json:"id"`
	Ref     string    `json:"ref"`
	Method  string    `json:"method"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
	Seq     uint64    `json:"seq"`
}

// decodeTaskHead decodes the head of a value of the tasks bucket.
func decodeTaskHead(b []byte) (taskHead, error) {
	var h taskHead
	if err := decode("task", b, &h); err != nil {
		return taskHead{}, err
	}
	st, err := parseState(h.State)
	switch {
	case err != nil:
		return taskHead{}, damaged("task %s: %v", h.ID, err)
	case h.ID == "":
		return taskHead{}, damaged("task without id")
	case !st.Valid():
		return taskHead{}, damaged("task %s has no state", h.ID)
	case h.Seq == 0:
		return taskHead{}, damaged("task %s has seq 0", h.ID)
	}
	h.State = string(st)
	return h, nil
}

// parseState reads a stored state name as states.State.UnmarshalText does,
// without its cost for the canonical names the store writes.
func parseState(s string) (states.State, error) {
	if st := states.State(s); s == "" || st.Valid() {
		return st, nil
	}
	return states.Parse(s)
}

// encodeRecord returns the stored form of a history record.
func encodeRecord(r *persist.Record) ([]byte, error) { return encode("record", r) }

// decodeRecord decodes a value of a history bucket.
func decodeRecord(b []byte) (persist.Record, error) {
	var r persist.Record
	sh := struct {
		*persist.Record
		From string `json:"from,omitempty"`
		To   string `json:"to"`
	}{Record: &r}
	if err := decode("record", b, &sh); err != nil {
		return persist.Record{}, err
	}
	var err error
	if r.From, err = parseState(sh.From); err != nil {
		return persist.Record{}, damaged("record %d: %v", r.Seq, err)
	}
	if r.To, err = parseState(sh.To); err != nil {
		return persist.Record{}, damaged("record %d: %v", r.Seq, err)
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
	buf.Grow(512) // a task or a record fits: one allocation
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

// historyKey is the key of a history record: the task's id, 0x00, and the
// record's seq, big-endian, so a task's records are together and in
// sequence order. Ids hold no 0x00 (Create refuses them), so the prefix
// id+0x00 is the task's alone.
func historyKey(id string, seq uint64) []byte {
	k := make([]byte, 0, len(id)+9)
	k = append(k, id...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// historyPrefix is the prefix of every history key of the task id.
func historyPrefix(id string) []byte { return append([]byte(id), 0) }

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
