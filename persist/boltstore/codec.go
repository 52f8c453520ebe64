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

// Every stored value starts with a byte that says how the rest is
// encoded, so that a later captchafsm can change the encoding of one kind
// of value and still read the values written before, then a CRC-32C (4
// bytes, big-endian) of the payload that follows: bbolt checks no data,
// and a flipped bit in a token or a time must not pass unseen.
const (
	// encodingV1: the payload is JSON. Schema 1 wrote every value so;
	// params are still written so (they are read only by Get), and the
	// history records of a migrated file stay so.
	encodingV1 byte = 1
	// encodingV2: the payload is binary (see encodeTaskV2 and
	// encodeRecordV2). Tasks and records are written so since schema 2.
	encodingV2 byte = 2
	// encodingV3: a task's binary payload followed by its options
	// (persist.TaskOptions). Only a task that has options is written so,
	// so that a file whose tasks have none stays readable by the
	// captchafsm before them, which refuses a value of encoding 3 as
	// newer, never as damage.
	encodingV3 byte = 3
	// encodingV4: encodingV3 followed by the task's labels
	// (persist.TaskOptions.Labels). Only a task with labels is written so,
	// for the same reason.
	encodingV4 byte = 4
	// encodingLatest is the highest encoding this program reads.
	encodingLatest = encodingV4
)

// headerLen is the length of a value's header: version and CRC.
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

// frameValue returns a value of encoding v holding payload.
func frameValue(v byte, payload []byte) []byte {
	b := make([]byte, headerLen, headerLen+len(payload))
	b[0] = v
	binary.BigEndian.PutUint32(b[1:], crc32.Checksum(payload, crcTable))
	return append(b, payload...)
}

// sealValue fills in the header of b, whose payload starts at headerLen.
func sealValue(v byte, b []byte) []byte {
	b[0] = v
	binary.BigEndian.PutUint32(b[1:], crc32.Checksum(b[headerLen:], crcTable))
	return b
}

// unframe checks a value's header and checksum and returns its encoding
// and payload.
func unframe(what string, b []byte) (byte, []byte, error) {
	switch {
	case len(b) == 0:
		return 0, nil, damaged("empty %s", what)
	case b[0] > encodingLatest:
		return 0, nil, &decodeError{kind: persist.ErrNewerSchema,
			msg: fmt.Sprintf("%s has encoding version %d, this program reads up to %d: upgrade captchafsm", what, b[0], encodingLatest)}
	case b[0] == 0:
		return 0, nil, damaged("%s has encoding version %d", what, b[0])
	case len(b) < headerLen:
		return 0, nil, damaged("%s of %d bytes", what, len(b))
	}
	if got, want := crc32.Checksum(b[headerLen:], crcTable), binary.BigEndian.Uint32(b[1:]); got != want {
		return 0, nil, damaged("%s fails its checksum (%08x, stored %08x)", what, got, want)
	}
	return b[0], b[headerLen:], nil
}

// encodeTask returns the stored form of t: its fields without Params, which
// live in their own bucket.
func encodeTask(t *persist.Task) ([]byte, error) {
	return encodeTaskBinary(t)
}

// decodeTask decodes a stored task, of any encoding, and checks the fields
// the store depends on. DueAt is left zero: only Due reports it.
func decodeTask(b []byte) (*persist.Task, error) {
	t, err := decodeTaskDue(b)
	if t != nil {
		t.DueAt = time.Time{}
	}
	return t, err
}

// decodeTaskDue is decodeTask with DueAt: where the due index holds the
// task, if it is active.
func decodeTaskDue(b []byte) (*persist.Task, error) {
	v, payload, err := unframe("task", b)
	if err != nil {
		return nil, err
	}
	var t *persist.Task
	if v == encodingV1 {
		t, err = decodeTaskV1(payload)
	} else {
		t, err = decodeTaskBinary(payload, v)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case t.ID == "":
		return nil, damaged("task without id")
	case !t.State.Valid():
		return nil, damaged("task %s has no state", t.ID)
	case t.Seq == 0:
		return nil, damaged("task %s has seq 0", t.ID)
	}
	return t, nil
}

// decodeTaskV1 decodes a JSON task.
func decodeTaskV1(payload []byte) (*persist.Task, error) {
	var t persist.Task
	// The outer State shadows the task's for the decoder, so the state is
	// read as a string and parsed once, by parseState.
	sh := struct {
		*persist.Task
		State string `json:"state"`
	}{Task: &t}
	if err := json.Unmarshal(payload, &sh); err != nil {
		return nil, damaged("task: %v", err)
	}
	var err error
	if t.State, err = parseState(sh.State); err != nil {
		return nil, damaged("task %s: %v", t.ID, err)
	}
	if t.Params != nil {
		// The tasks bucket never holds params; a value that does was not
		// written by this store.
		return nil, damaged("task %s holds params", t.ID)
	}
	// Schema 1 had no intent flag; the migration to schema 2 sets it in
	// every task it rewrites. Its due index (schema 2's) is exact.
	t.Intent = false
	t.DueAt = time.Time{}
	if t.State.Active() {
		t.DueAt = t.NextAt
	}
	return &t, nil
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
func encodeRecord(r *persist.Record) ([]byte, error) { return encodeRecordV2(r) }

// decodeRecord decodes a value of the history bucket, of either encoding.
func decodeRecord(b []byte) (persist.Record, error) {
	v, payload, err := unframe("record", b)
	if err != nil {
		return persist.Record{}, err
	}
	var r persist.Record
	switch v {
	case encodingV1:
		r, err = decodeRecordV1(payload)
	case encodingV2:
		r, err = decodeRecordV2(payload)
	default:
		return persist.Record{}, damaged("record has encoding version %d, which records never have", v)
	}
	if err != nil {
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

// decodeRecordV1 decodes a JSON record.
func decodeRecordV1(payload []byte) (persist.Record, error) {
	var r persist.Record
	sh := struct {
		*persist.Record
		From string `json:"from,omitempty"`
		To   string `json:"to"`
	}{Record: &r}
	if err := json.Unmarshal(payload, &sh); err != nil {
		return persist.Record{}, damaged("record: %v", err)
	}
	var err error
	if r.From, err = parseState(sh.From); err != nil {
		return persist.Record{}, damaged("record %d: %v", r.Seq, err)
	}
	if r.To, err = parseState(sh.To); err != nil {
		return persist.Record{}, damaged("record %d: %v", r.Seq, err)
	}
	return r, nil
}

// encodeParams returns the stored form of a task's params: JSON
// (encoding 1), read only by Get.
func encodeParams(p map[string]string) ([]byte, error) {
	if p == nil {
		p = map[string]string{}
	}
	var buf bytes.Buffer
	buf.Grow(512)
	buf.Write(make([]byte, headerLen))
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("boltstore: encode params: %w", err)
	}
	b := buf.Bytes()
	return sealValue(encodingV1, b[:len(b)-1]), nil // without Encode's newline
}

// decodeParams decodes a value of the params bucket; an empty map decodes
// to nil, as the task was created.
func decodeParams(b []byte) (map[string]string, error) {
	v, payload, err := unframe("params", b)
	if err != nil {
		return nil, err
	}
	if v != encodingV1 {
		return nil, damaged("params have encoding version %d", v)
	}
	var p map[string]string
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, damaged("params: %v", err)
	}
	if len(p) == 0 {
		return nil, nil
	}
	return p, nil
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

// timeKeyLen is the length of timeKey's encoding.
const timeKeyLen = 12

// timeKey encodes t so that keys sort as instants: its Unix seconds with
// the sign bit flipped (8 bytes, big-endian), then its nanoseconds (4
// bytes). The zero time sorts before every time since year 1.
func timeKey(t time.Time) []byte {
	return appendTimeKey(make([]byte, 0, timeKeyLen), t)
}

func appendTimeKey(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

// decodeTime decodes a timeKey; ok is false when b is not one. The time
// of year 1 that is the zero time decodes to time.Time{}.
func decodeTime(b []byte) (t time.Time, ok bool) {
	if len(b) < timeKeyLen {
		return time.Time{}, false
	}
	sec := int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	ns := binary.BigEndian.Uint32(b[8:])
	if ns >= 1e9 || sec > maxUnix {
		return time.Time{}, false
	}
	t = time.Unix(sec, int64(ns))
	if t.IsZero() {
		return time.Time{}, true
	}
	return t, true
}

// taskKey is the key of a task in the history bucket: its id, then 0x01,
// so that the task sorts right after its own records (id, 0x00, seq) and
// before every other id's keys, and task keys keep the ids' order (ids
// hold no 0x00).
func taskKey(id string) []byte {
	return append(append(make([]byte, 0, len(id)+1), id...), 1)
}

// keyKind tells the keys of the history bucket apart: a record's key is
// id, 0x00 and 8 bytes of seq; a task's is id and 0x01; ids hold no
// 0x00, so a key with 0x00 nine bytes from its end is a record's and one
// without any 0x00 that ends with 0x01 is a task's. It returns the id,
// and whether the key is a task's; ok is false for any other key.
func keyKind(k []byte) (id []byte, task, ok bool) {
	n := len(k)
	switch {
	case n >= 10 && k[n-9] == 0 && bytes.IndexByte(k[:n-9], 0) < 0:
		return k[:n-9], false, true
	case n >= 2 && k[n-1] == 1 && bytes.IndexByte(k, 0) < 0:
		return k[:n-1], true, true
	}
	return nil, false, false
}

// dueKey is the key of an active task in the due index: its NextAt as a
// timeKey, then its id.
func dueKey(next time.Time, id string) []byte {
	return append(appendTimeKey(make([]byte, 0, timeKeyLen+len(id)), next), id...)
}

// splitDueKey returns the time and id of a due-index key.
func splitDueKey(k []byte) (time.Time, string, error) {
	t, ok := decodeTime(k)
	if !ok || len(k) == timeKeyLen {
		return time.Time{}, "", damaged("due index key %x is malformed", k)
	}
	return t, string(k[timeKeyLen:]), nil
}
