package boltstore

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

var sampleTask = persist.Task{
	ID: "0195f0c2-7d3e-7a41-9c4b-2f1e3d5a6b7c", Ref: "order-7", Method: "userrecaptcha",
	State: states.Polling, Code: "CAPCHA_NOT_READY", Submits: 1, Retries: 2, Resubmits: 1, Polls: 3,
	ProviderID: "7234567890",
	NextAt:     time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("", 5*3600)),
	PollSince:  time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC),
	Created:    time.Date(2025, 1, 2, 3, 0, 0, 0, time.UTC), Updated: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	Seq: 9,
}

var sampleRecord = persist.Record{
	Seq: 4, At: time.Date(2025, 1, 2, 3, 4, 5, 999, time.UTC), From: states.Submitting,
	Event: transitions.TransientError, To: states.Backoff, Code: "ERROR_NO_SLOT_AVAILABLE",
	Detail: "wait 5s <&>", ProviderID: "x", PossiblyCharged: true,
}

func mustEncode(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestCodecRoundTrip(t *testing.T) {
	b, err := encodeTask(&sampleTask)
	require.NoError(t, err)
	assert.Equal(t, encodingV2, b[0])
	got, err := decodeTask(b)
	require.NoError(t, err)
	assert.True(t, sameTaskValue(&sampleTask, got))

	withParams := sampleTask
	withParams.Params = map[string]string{"k": "v"}
	b2, err := encodeTask(&withParams)
	require.NoError(t, err)
	assert.Equal(t, b, b2, "params leaked into the task value")

	// A task with options is written in encoding 3, which keeps them.
	withOpts := sampleTask
	withOpts.Options = persist.TaskOptions{Deadline: time.Date(2025, 1, 2, 3, 6, 0, 7, time.UTC),
		Priority: -3, MaxRetries: 7, MaxResubmits: -1}
	b3, err := encodeTask(&withOpts)
	require.NoError(t, err)
	assert.Equal(t, encodingV3, b3[0])
	got, err = decodeTask(b3)
	require.NoError(t, err)
	assert.True(t, got.Options.Deadline.Equal(withOpts.Options.Deadline))
	got.Options.Deadline = withOpts.Options.Deadline
	assert.Equal(t, withOpts.Options, got.Options)
	assert.True(t, sameTaskValue(&withOpts, got))
	for _, o := range []persist.TaskOptions{{Priority: 1}, {MaxRetries: -1}, {MaxResubmits: 2}, {Deadline: time.Unix(1, 0)}} {
		withOpts.Options = o
		b3, err := encodeTask(&withOpts)
		require.NoError(t, err)
		assert.Equal(t, encodingV3, b3[0], "%+v", o)
		got, err := decodeTask(b3)
		require.NoError(t, err)
		assert.True(t, got.Options.Deadline.Equal(o.Deadline))
		assert.Equal(t, o.Priority, got.Options.Priority)
		assert.Equal(t, o.MaxRetries, got.Options.MaxRetries)
		assert.Equal(t, o.MaxResubmits, got.Options.MaxResubmits)
	}

	// A task with labels is written in encoding 4, in key order, so that
	// equal labels give equal bytes.
	withOpts.Options = persist.TaskOptions{Labels: map[string]string{"z": "last", "a": "", "ключ": "✓"}}
	b4, err := encodeTask(&withOpts)
	require.NoError(t, err)
	assert.Equal(t, encodingV4, b4[0])
	for range 5 {
		again, err := encodeTask(&withOpts)
		require.NoError(t, err)
		require.Equal(t, b4, again, "map order leaked into the value")
	}
	got, err = decodeTask(b4)
	require.NoError(t, err)
	assert.Equal(t, withOpts.Options.Labels, got.Options.Labels)
	assert.True(t, sameTaskValue(&withOpts, got))

	rb, err := encodeRecord(&sampleRecord)
	require.NoError(t, err)
	rec, err := decodeRecord(rb)
	require.NoError(t, err)
	assert.True(t, sameRecordValue(sampleRecord, rec))

	// Schema 1's JSON values still decode.
	for _, v := range []*persist.Task{&sampleTask, {ID: "z", State: states.Done, Seq: 1}} {
		got, err := decodeTask(frame(mustJSON(v)))
		require.NoError(t, err)
		assert.True(t, sameTaskValue(v, got))
	}
	rec, err = decodeRecord(frame(mustJSON(&sampleRecord)))
	require.NoError(t, err)
	assert.True(t, sameRecordValue(sampleRecord, rec))

	pb, err := encodeParams(map[string]string{"body": "aGk="})
	require.NoError(t, err)
	p, err := decodeParams(pb)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"body": "aGk="}, p)
}

// frame wraps body as a version 1 (JSON) value with a valid checksum.
func frame(body []byte) []byte { return frameValue(encodingV1, body) }

// frame2 wraps body as a version 2 (binary) value with a valid checksum.
func frame2(body []byte) []byte { return frameValue(encodingV2, body) }

// mustJSON is v as schema 1 stored it.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestDecodeErrors(t *testing.T) {
	good := mustEncode(encodeTask(&sampleTask))
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0x04
	payload := good[headerLen:]
	tests := []struct {
		name string
		b    []byte
		is   error
		want string
	}{
		{"empty", nil, persist.ErrNotOurs, "empty task"},
		{"newer version", append([]byte{5}, good[1:]...), persist.ErrNewerSchema, "encoding version 5, this program reads up to 4"},
		{"options cut short", frameValue(encodingV3, slices.Clone(payload)), persist.ErrNotOurs, "ends early"},
		{"labels cut short", frameValue(encodingV4, append(slices.Clone(payload), 0, 0, 0, 0)), persist.ErrNotOurs, "ends early"},
		{"no labels", frameValue(encodingV4, append(slices.Clone(payload), 0, 0, 0, 0, 0)), persist.ErrNotOurs, "0 labels"},
		{"repeated label", frameValue(encodingV4, append(slices.Clone(payload), 0, 0, 0, 0, 2, 1, 'k', 0, 1, 'k', 0)), persist.ErrNotOurs, "repeated"},
		{"binary cut short", frame2(payload[:len(payload)-3]), persist.ErrNotOurs, "ends early"},
		{"binary left over", frame2(append(slices.Clone(payload), 0)), persist.ErrNotOurs, "1 bytes left over"},
		{"binary unknown state", frame2(append([]byte{9}, payload[1:]...)), persist.ErrNotOurs, "state code 9 is unknown"},
		{"binary unknown flag", frame2(append([]byte{payload[0], 4}, payload[2:]...)), persist.ErrNotOurs, "unknown task flags"},
		{"version 0", append([]byte{0}, good[1:]...), persist.ErrNotOurs, "encoding version 0"},
		{"short", good[:3], persist.ErrNotOurs, "task of 3 bytes"},
		{"flipped bit", flipped, persist.ErrNotOurs, "fails its checksum"},
		{"not json", frame([]byte("{nope")), persist.ErrNotOurs, "damaged stored value: task: invalid character"},
		{"no id", frame([]byte(`{"state":"Polling","seq":1}`)), persist.ErrNotOurs, "without id"},
		{"no state", frame([]byte(`{"id":"a","seq":1}`)), persist.ErrNotOurs, "has no state"},
		{"unknown state", frame([]byte(`{"id":"a","state":"Sleeping","seq":1}`)), persist.ErrNotOurs, "unknown state"},
		{"seq 0", frame([]byte(`{"id":"a","state":"Polling"}`)), persist.ErrNotOurs, "seq 0"},
		{"params", frame([]byte(`{"id":"a","state":"Polling","seq":1,"params":{"a":"b"}}`)), persist.ErrNotOurs, "holds params"},
		{"binary seq 0", mustEncode(encodeTask(&persist.Task{ID: "a", State: states.Done})), persist.ErrNotOurs, "seq 0"},
		{"bad time", frame([]byte(`{"id":"a","state":"Polling","seq":1,"next_at":"tomorrow"}`)), persist.ErrNotOurs, "parsing time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeTask(tt.b)
			require.ErrorIs(t, err, errDecode)
			require.ErrorIs(t, err, tt.is)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func sameTaskValue(a, b *persist.Task) bool {
	ca, cb := *a, *b
	for _, p := range [][2]*time.Time{{&ca.NextAt, &cb.NextAt}, {&ca.PollSince, &cb.PollSince}, {&ca.Created, &cb.Created}, {&ca.Updated, &cb.Updated}} {
		if !p[0].Equal(*p[1]) {
			return false
		}
		*p[0], *p[1] = time.Time{}, time.Time{}
	}
	return mustEncodeEqual(encodeTask(&ca))(encodeTask(&cb))
}

func sameRecordValue(a, b persist.Record) bool {
	if !a.At.Equal(b.At) {
		return false
	}
	a.At, b.At = time.Time{}, time.Time{}
	return a == b
}

func mustEncodeEqual(a []byte, errA error) func([]byte, error) bool {
	return func(b []byte, errB error) bool { return errA == nil && errB == nil && bytes.Equal(a, b) }
}

// fuzzBodies are JSON bodies the fuzz targets start from, framed or not.
var fuzzBodies = []string{
	`null`,
	`{"id":"a","state":"needs-account-fix","seq":1,"next_at":"2025-01-01T00:00:00.5+23:59"}`,
	`{"ID":"a","State":"Done","Seq":18446744073709551615,"polls":-1}`,
	"{\"id\":\"a\",\"state\":\"Done\",\"seq\":1,\"token\":\"\xff\xfe\"}",
	`{"seq":1,"event":"x","to":"done","at":"0001-01-01T00:00:00Z"}`,
	`{"seq":1,"event":"x","to":"Done","from":"Sleeping"}`,
	`{"seq":0,"event":"x","to":"Done"}`,
	`{"seq":2,"event":"solved","to":"Done","from":"Polling","at":"9999-12-31T23:59:59.999999999-23:59"}`,
}

func FuzzDecodeTask(f *testing.F) {
	f.Add(mustEncode(encodeTask(&sampleTask)))
	f.Add(mustEncode(encodeTask(&persist.Task{ID: "a", State: states.Done, Seq: 1, Token: "t\u00e9"})))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{2, '{', '}'})
	f.Add(mustEncode(encodeTask(&sampleTask))[headerLen:])
	withOpts := sampleTask
	withOpts.Options = persist.TaskOptions{Deadline: time.Unix(1e9, 5), Priority: 9, MaxRetries: -1}
	f.Add(mustEncode(encodeTask(&withOpts))[headerLen:])
	withOpts.Options.Labels = map[string]string{"pingback": "http://127.0.0.1/x", "a": ""}
	f.Add(mustEncode(encodeTask(&withOpts))[headerLen:])
	withOpts.DueAt = withOpts.NextAt.Add(-time.Second)
	f.Add(mustEncode(encodeTask(&withOpts))[headerLen:])
	for _, b := range fuzzBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// As given (mostly refused by the checksum), and framed, so the
		// fuzzer reaches the JSON and the binary decoder.
		for _, v := range [][]byte{b, frame(b), frame2(b), frameValue(encodingV3, b), frameValue(encodingV4, b)} {
			task, err := decodeTaskDue(v)
			if err != nil {
				require.ErrorIs(t, err, errDecode)
				continue
			}
			b2, err := encodeTask(task)
			require.NoError(t, err, "a decoded task does not encode")
			task2, err := decodeTaskDue(b2)
			require.NoError(t, err, "a re-encoded task does not decode")
			require.True(t, sameTaskValue(task, task2), "round trip changed the task:\n%q\n%q", v, b2)
			require.True(t, task.DueAt.Equal(task2.DueAt), "round trip moved the due place: %v, %v", task.DueAt, task2.DueAt)
			b3, err := encodeTask(task2)
			require.NoError(t, err)
			require.Equal(t, b2, b3, "encoding is not stable")
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(mustEncode(encodeRecord(&sampleRecord)))
	f.Add(mustEncode(encodeRecord(&persist.Record{Seq: 1, Event: transitions.Created, To: states.Submitting})))
	f.Add([]byte{})
	f.Add([]byte{1, '['})
	f.Add([]byte{9, '{', '}'})
	f.Add(mustEncode(encodeRecord(&sampleRecord))[headerLen:])
	for _, b := range fuzzBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range [][]byte{b, frame(b), frame2(b)} {
			rec, err := decodeRecord(v)
			if err != nil {
				require.ErrorIs(t, err, errDecode)
				continue
			}
			b2, err := encodeRecord(&rec)
			require.NoError(t, err, "a decoded record does not encode")
			rec2, err := decodeRecord(b2)
			require.NoError(t, err, "a re-encoded record does not decode")
			require.True(t, sameRecordValue(rec, rec2), "round trip changed the record:\n%q\n%q", v, b2)
			b3, err := encodeRecord(&rec2)
			require.NoError(t, err)
			require.Equal(t, b2, b3, "encoding is not stable")
		}
	})
}

// FuzzKeyKind: every key the history bucket holds is told apart: a
// task's key (id 0x01) and a record's (id 0x00 seq) give back their id,
// whatever the id's bytes (no 0x00) and the seq, and a key of neither
// form is neither.
func FuzzKeyKind(f *testing.F) {
	f.Add("01974a1c-0001-7000-8000-000000000001", uint64(1))
	f.Add("a\x01", uint64(0x0100))
	f.Add("\x01\x01", uint64(1<<63))
	f.Fuzz(func(t *testing.T, id string, seq uint64) {
		if id == "" || strings.IndexByte(id, 0) >= 0 {
			return
		}
		got, task, ok := keyKind(taskKey(id))
		require.True(t, ok && task, "task key of %q", id)
		require.Equal(t, id, string(got))
		got, task, ok = keyKind(historyKey(id, seq))
		require.True(t, ok && !task, "record key of %q, seq %d", id, seq)
		require.Equal(t, id, string(got))
		// A task key is never a record key, and the other way round.
		require.NotEqual(t, taskKey(id), historyKey(id, seq))
		if _, _, ok := keyKind([]byte(id)); ok {
			// An id alone reads as a task's key only when it ends with
			// 0x01, as the task key of the id without it.
			require.Equal(t, byte(1), id[len(id)-1])
		}
	})
}

// A task's place in the due index (DueAt, schema 4) is stored only when it
// is earlier than NextAt, by at most persist.DueSlack, for an active task;
// any other DueAt means NextAt. decodeTask leaves it zero (only Due
// reports it), decodeTaskDue returns it; a stored place that breaks the
// rule is damage.
func TestDueAtRoundTrip(t *testing.T) {
	plain := mustEncode(encodeTask(&sampleTask))
	early := sampleTask
	early.DueAt = sampleTask.NextAt.Add(-30 * time.Second)
	b := mustEncode(encodeTask(&early))
	assert.Greater(t, len(b), len(plain), "the place is stored")
	got, err := decodeTaskDue(b)
	require.NoError(t, err)
	assert.True(t, got.DueAt.Equal(early.DueAt), "DueAt %v, want %v", got.DueAt, early.DueAt)
	got, err = decodeTask(b)
	require.NoError(t, err)
	assert.True(t, got.DueAt.IsZero(), "decodeTask reports no place")

	for name, due := range map[string]time.Time{
		"zero":             {},
		"equal":            sampleTask.NextAt,
		"after NextAt":     sampleTask.NextAt.Add(time.Second),
		"beyond the slack": sampleTask.NextAt.Add(-persist.DueSlack - time.Nanosecond),
	} {
		other := sampleTask
		other.DueAt = due
		assert.Equal(t, plain, mustEncode(encodeTask(&other)), "%s: stored as NextAt", name)
		got, err := decodeTaskDue(plain)
		require.NoError(t, err)
		assert.True(t, got.DueAt.Equal(sampleTask.NextAt), "%s", name)
	}
	settled := early
	settled.State = states.Done
	got, err = decodeTaskDue(mustEncode(encodeTask(&settled)))
	require.NoError(t, err)
	assert.True(t, got.DueAt.IsZero(), "a settled task has no place")

	// Damage: the flag on a settled task, a place after NextAt or beyond
	// the slack (the place is the payload's tail: sampleTask has no
	// options).
	payload := b[headerLen:]
	tail := len(payload) - (len(plain) - headerLen)
	withPlace := func(at time.Time) []byte {
		w := binWriter{b: slices.Clone(payload[:len(payload)-tail])}
		w.time(at)
		return frame2(w.b)
	}
	doneState, _ := stateCode(states.Done)
	for name, v := range map[string][]byte{
		"settled":          frame2(append([]byte{doneState}, payload[1:]...)),
		"after NextAt":     withPlace(sampleTask.NextAt.Add(time.Nanosecond)),
		"equal to NextAt":  withPlace(sampleTask.NextAt),
		"beyond the slack": withPlace(sampleTask.NextAt.Add(-persist.DueSlack - time.Nanosecond)),
	} {
		_, err := decodeTaskDue(v)
		require.ErrorIs(t, err, persist.ErrNotOurs, name)
	}
	_, err = decodeTaskDue(withPlace(sampleTask.NextAt.Add(-persist.DueSlack)))
	require.NoError(t, err, "a place exactly DueSlack early")
}
