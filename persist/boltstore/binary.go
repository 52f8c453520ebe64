package boltstore

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// The binary encoding (encodingV2) of tasks and records. Decoding a task
// is what every read of the store does, a hundred thousand times for a
// resume or a listing, so the layout is made to be read in one pass with
// two allocations: the task, and one string that holds every text field
// (the fields are slices of it).
//
// Integers are varints (signed ones zig-zag), strings a uvarint length and
// their bytes, states one byte (stateCodes). A time is a uvarint of its
// nanoseconds plus one, 0 for the zero time, then (unless zero) a varint
// of its Unix seconds: exact to the nanosecond, any year. Decoded times
// are in the local zone. A value with bytes left over is damaged.
//
// Task:   state, flags (1: Intent, 2: due early), seq, id, ref, method,
//         code, provider id, token, cost, owner, submits, retries,
//         resubmits, polls, next at, poll since, created, updated, lease
//         until, then (flag 2, schema 4) the time the due index holds the
//         task under, when it is earlier than next at (see
//         persist.DueSlack; without the flag an active task is held under
//         next at);
//         encodingV3 (a task with options) then adds deadline, priority,
//         max retries, max resubmits; encodingV4 (a task with labels)
//         then adds the number of labels and each key and value, in key
//         order.
// Record: seq, at, from (0: none), to, flags (1: PossiblyCharged), event,
//         code, detail, provider id.

// stateCodes numbers the states in stored values. A released number never
// changes meaning.
var stateCodes = [...]states.State{
	1: states.Submitting, 2: states.Backoff, 3: states.Polling, 4: states.Resubmitting,
	5: states.Done, 6: states.Failed, 7: states.NeedsAccountFix,
}

func stateCode(s states.State) (byte, bool) {
	if s == "" {
		return 0, true
	}
	for i, v := range stateCodes {
		if i > 0 && v == s {
			return byte(i), true
		}
	}
	return 0, false
}

const (
	taskIntent      = 1 << 0
	taskDueEarly    = 1 << 1
	recordCharged   = 1 << 0
	knownTaskFlags  = taskIntent | taskDueEarly
	knownRecordFlag = recordCharged
)

// binWriter appends the binary encoding's elements to a value.
type binWriter struct{ b []byte }

func (w *binWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *binWriter) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *binWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *binWriter) time(t time.Time) {
	if t.IsZero() {
		w.b = append(w.b, 0)
		return
	}
	w.uvarint(uint64(t.Nanosecond()) + 1)
	w.varint(t.Unix())
}

// encodeTaskBinary returns the binary value of t, without its Params:
// encodingV2, or encodingV3 when t has options.
func encodeTaskBinary(t *persist.Task) ([]byte, error) {
	st, ok := stateCode(t.State)
	if !ok || st == 0 {
		return nil, fmt.Errorf("boltstore: encode task %s: %q is not a state", t.ID, t.State)
	}
	n := headerLen + 48 + len(t.ID) + len(t.Ref) + len(t.Method) + len(t.Code) + len(t.ProviderID) +
		len(t.Token) + len(t.Cost) + len(t.Owner)
	w := binWriter{b: make([]byte, headerLen, n)}
	w.b = append(w.b, st)
	var flags uint64
	if t.Intent {
		flags |= taskIntent
	}
	early := dueEarly(t)
	if early {
		flags |= taskDueEarly
	}
	w.uvarint(flags)
	w.uvarint(t.Seq)
	for _, s := range [...]string{t.ID, t.Ref, t.Method, t.Code, t.ProviderID, t.Token, t.Cost, t.Owner} {
		w.str(s)
	}
	for _, v := range [...]int{t.Submits, t.Retries, t.Resubmits, t.Polls} {
		w.varint(int64(v))
	}
	for _, tm := range [...]time.Time{t.NextAt, t.PollSince, t.Created, t.Updated, t.LeaseUntil} {
		w.time(tm)
	}
	if early {
		w.time(t.DueAt)
	}
	if o := t.Options; !o.IsZero() {
		w.time(o.Deadline)
		for _, v := range [...]int{o.Priority, o.MaxRetries, o.MaxResubmits} {
			w.varint(int64(v))
		}
		if len(o.Labels) == 0 {
			return sealValue(encodingV3, w.b), nil
		}
		w.uvarint(uint64(len(o.Labels)))
		for _, k := range slices.Sorted(maps.Keys(o.Labels)) {
			w.str(k)
			w.str(o.Labels[k])
		}
		return sealValue(encodingV4, w.b), nil
	}
	return sealValue(encodingV2, w.b), nil
}

// dueEarly reports whether the due index holds t before its NextAt: t is
// active and its DueAt is early (heldEarly). Any other DueAt (zero, for
// one) means NextAt.
func dueEarly(t *persist.Task) bool { return t.State.Active() && heldEarly(t.DueAt, t.NextAt) }

// heldEarly reports whether due is a place the due index may hold a task
// due at next under, other than next itself: before it, by at most
// persist.DueSlack, not zero. The times compare as wall times, as they are
// stored: two monotonic readings would ignore a step of the wall clock
// between them, and the decoder, which sees wall times only, would then
// refuse what the encoder wrote.
func heldEarly(due, next time.Time) bool {
	due, next = due.Round(0), next.Round(0)
	return !due.IsZero() && due.Before(next) && next.Sub(due) <= persist.DueSlack
}

// encodeRecordV2 returns the binary value of r.
func encodeRecordV2(r *persist.Record) ([]byte, error) {
	from, okFrom := stateCode(r.From)
	to, okTo := stateCode(r.To)
	if !okFrom || !okTo || to == 0 {
		return nil, fmt.Errorf("boltstore: encode record %d: %q → %q are not states", r.Seq, r.From, r.To)
	}
	n := headerLen + 32 + len(r.Event) + len(r.Code) + len(r.Detail) + len(r.ProviderID)
	w := binWriter{b: make([]byte, headerLen, n)}
	w.uvarint(r.Seq)
	w.time(r.At)
	w.b = append(w.b, from, to)
	var flags uint64
	if r.PossiblyCharged {
		flags |= recordCharged
	}
	w.uvarint(flags)
	for _, s := range [...]string{string(r.Event), r.Code, r.Detail, r.ProviderID} {
		w.str(s)
	}
	return sealValue(encodingV2, w.b), nil
}

// binReader reads a binary payload. text is the payload as one string, so
// that string fields are slices of it; the first error sticks.
type binReader struct {
	b    []byte
	text string
	off  int
	msg  string // why the value is damaged; "" while it is not
}

func newBinReader(payload []byte) *binReader {
	return &binReader{b: payload, text: string(payload)}
}

func (r *binReader) fail(what string) {
	if r.msg == "" {
		r.msg = fmt.Sprintf("%s at byte %d", what, r.off)
	}
}

func (r *binReader) failed() bool { return r.msg != "" }

func (r *binReader) byte() byte {
	if r.failed() || r.off >= len(r.b) {
		r.fail("value ends early")
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *binReader) uvarint() uint64 {
	if r.failed() {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if !r.advance(n) {
		return 0
	}
	return v
}

func (r *binReader) varint() int64 {
	if r.failed() {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if !r.advance(n) {
		return 0
	}
	return v
}

// advance moves past a varint of n bytes as encoding/binary reports it:
// 0 for a value that ends early, negative for an overlong one.
func (r *binReader) advance(n int) bool {
	switch {
	case n == 0:
		r.fail("value ends early")
		return false
	case n < 0:
		r.fail("bad varint")
		return false
	}
	r.off += n
	return true
}

func (r *binReader) int() int {
	v := r.varint()
	if int64(int(v)) != v {
		r.fail("integer out of range")
		return 0
	}
	return int(v)
}

func (r *binReader) str() string {
	n := r.uvarint()
	if r.failed() {
		return ""
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail("string runs past the value")
		return ""
	}
	s := r.text[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

func (r *binReader) time() time.Time {
	ns := r.uvarint()
	if r.failed() || ns == 0 {
		return time.Time{}
	}
	if ns > 1e9 {
		r.fail("nanoseconds out of range")
		return time.Time{}
	}
	sec := r.varint()
	if r.failed() {
		return time.Time{}
	}
	if sec > maxUnix {
		r.fail("seconds out of range")
		return time.Time{}
	}
	t := time.Unix(sec, int64(ns-1))
	if t.IsZero() {
		// The zero instant is written as 0, never so.
		r.fail("zero time written as a time")
	}
	return t
}

func (r *binReader) state(what string) states.State {
	c := r.byte()
	if r.failed() {
		return ""
	}
	if int(c) >= len(stateCodes) {
		r.fail(fmt.Sprintf("%s state code %d is unknown", what, c))
		return ""
	}
	return stateCodes[c]
}

// end checks that the whole payload was read.
func (r *binReader) end() {
	if !r.failed() && r.off != len(r.b) {
		r.fail(fmt.Sprintf("%d bytes left over", len(r.b)-r.off))
	}
}

// maxUnix is the largest Unix second time.Unix takes without overflow.
const maxUnix = math.MaxInt64 - 62135596800

// decodeTaskBinary decodes a binary task of encoding v: encodingV2, or
// encodingV3 (with its options), or encodingV4 (options and labels).
func decodeTaskBinary(payload []byte, v byte) (*persist.Task, error) {
	r := newBinReader(payload)
	t := &persist.Task{}
	t.State = r.state("task")
	flags := r.uvarint()
	if flags&^knownTaskFlags != 0 {
		r.fail(fmt.Sprintf("unknown task flags %#x", flags))
	}
	t.Intent = flags&taskIntent != 0
	t.Seq = r.uvarint()
	t.ID, t.Ref, t.Method, t.Code = r.str(), r.str(), r.str(), r.str()
	t.ProviderID, t.Token, t.Cost, t.Owner = r.str(), r.str(), r.str(), r.str()
	t.Submits, t.Retries, t.Resubmits, t.Polls = r.int(), r.int(), r.int(), r.int()
	t.NextAt, t.PollSince, t.Created, t.Updated, t.LeaseUntil = r.time(), r.time(), r.time(), r.time(), r.time()
	switch {
	case flags&taskDueEarly == 0:
		if t.State.Active() {
			t.DueAt = t.NextAt
		}
	case !t.State.Active():
		r.fail("a settled task with a place in the due index")
	default:
		t.DueAt = r.time()
		if !heldEarly(t.DueAt, t.NextAt) {
			r.fail(fmt.Sprintf("due at %v, more than %v before next at %v, or not before it",
				t.DueAt, persist.DueSlack, t.NextAt))
		}
	}
	if v >= encodingV3 {
		o := &t.Options
		o.Deadline = r.time()
		o.Priority, o.MaxRetries, o.MaxResubmits = r.int(), r.int(), r.int()
	}
	if v >= encodingV4 {
		n := r.uvarint()
		switch {
		case r.failed():
		case n == 0 || n > persist.MaxLabels:
			r.fail(fmt.Sprintf("%d labels", n))
		default:
			labels := make(map[string]string, n)
			for range n {
				k := r.str()
				labels[k] = r.str()
			}
			if len(labels) != int(n) && !r.failed() {
				r.fail("a label key is repeated")
			}
			t.Options.Labels = labels
		}
	}
	if r.end(); r.failed() {
		return nil, damaged("task %q: %s", t.ID, r.msg)
	}
	return t, nil
}

// decodeRecordV2 decodes a binary record.
func decodeRecordV2(payload []byte) (persist.Record, error) {
	r := newBinReader(payload)
	var rec persist.Record
	rec.Seq = r.uvarint()
	rec.At = r.time()
	rec.From = r.state("from")
	rec.To = r.state("to")
	flags := r.uvarint()
	if flags&^knownRecordFlag != 0 {
		r.fail(fmt.Sprintf("unknown record flags %#x", flags))
	}
	rec.PossiblyCharged = flags&recordCharged != 0
	rec.Event = transitions.Event(r.str())
	rec.Code, rec.Detail, rec.ProviderID = r.str(), r.str(), r.str()
	if r.end(); r.failed() {
		return persist.Record{}, damaged("record %d: %s", rec.Seq, r.msg)
	}
	return rec, nil
}
