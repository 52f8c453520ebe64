package pgstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// maxKeyLen bounds ids and refs, as boltstore does, well below what a
// btree index entry can hold.
const maxKeyLen = 1024

// errDamaged is matched (with persist.ErrNotOurs) by a stored row that
// breaks the store's invariants.
var errDamaged = errors.New("pgstore: damaged row")

func damaged(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %w", errDamaged, fmt.Sprintf(format, args...), persist.ErrNotOurs)
}

// Times are kept exactly, to the nanosecond: a timestamptz column holds the
// microseconds (NULL for the zero time), a smallint column beside it the
// nanoseconds below.

// splitTime returns the timestamptz part of t (nil for the zero time) and
// the nanoseconds below the microsecond.
func splitTime(t time.Time) (*time.Time, int16) {
	if t.IsZero() {
		return nil, 0
	}
	us := t.Truncate(time.Microsecond)
	return &us, int16(t.Sub(us))
}

// joinTime is the inverse of splitTime.
func joinTime(t *time.Time, ns int16) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Add(time.Duration(ns))
}

// clean makes s storable in a text column: PostgreSQL refuses NUL and
// invalid UTF-8, which become U+FFFD (as encoding/json, and so boltstore,
// treats invalid UTF-8). Only free text goes through clean; ids and refs
// are refused instead (see checkKey).
func clean(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// checkKey refuses an id or ref that a text key column cannot hold as is.
func checkKey(what, s string) error {
	switch {
	case len(s) > maxKeyLen:
		return fmt.Errorf("%s is longer than %d bytes", what, maxKeyLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("%s %q holds a NUL byte", what, s)
	}
	return nil
}

// encodeParams returns the stored form of a task's params.
func encodeParams(p map[string]string) ([]byte, error) {
	if p == nil {
		p = map[string]string{}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode params: %w", err)
	}
	return b, nil
}

// decodeParams decodes stored params; an empty map decodes to nil, as the
// task was created.
func decodeParams(id string, b []byte) (map[string]string, error) {
	if b == nil {
		return nil, damaged("task %s: params are missing", id)
	}
	var p map[string]string
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, damaged("task %s: params: %v", id, err)
	}
	if len(p) == 0 {
		return nil, nil
	}
	return p, nil
}

// encodeLabels returns labels as the labels column holds them: a JSON
// object, or NULL for none.
func encodeLabels(labels map[string]string) (any, error) {
	if len(labels) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(labels)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	return string(b), nil
}

// taskCols are the columns scanTask reads, in order, qualified by the
// alias t.
const taskCols = `t.id, t.ref, t.method, t.state, t.code, t.submits, t.retries, t.resubmits, t.polls,
	t.provider_id, t.next_at, t.next_at_ns, t.poll_since, t.poll_since_ns, t.token, t.cost,
	t.created, t.created_ns, t.updated, t.updated_ns, t.owner, t.lease_until, t.lease_until_ns, t.seq, t.intent,
	t.deadline, t.deadline_ns, t.priority, t.max_retries, t.max_resubmits, t.labels`

// scanTask reads one row of taskCols, then extra.
func scanTask(row pgx.Row, extra ...any) (*persist.Task, error) {
	var (
		t                                    persist.Task
		ref                                  *string
		state                                string
		nextAt, pollSince, created, updated  *time.Time
		leaseUntil, deadline                 *time.Time
		nextNs, pollNs, createdNs, updatedNs int16
		leaseNs, deadlineNs                  int16
		seq                                  int64
		labels                               []byte
	)
	dest := []any{&t.ID, &ref, &t.Method, &state, &t.Code, &t.Submits, &t.Retries, &t.Resubmits, &t.Polls,
		&t.ProviderID, &nextAt, &nextNs, &pollSince, &pollNs, &t.Token, &t.Cost,
		&created, &createdNs, &updated, &updatedNs, &t.Owner, &leaseUntil, &leaseNs, &seq, &t.Intent,
		&deadline, &deadlineNs, &t.Options.Priority, &t.Options.MaxRetries, &t.Options.MaxResubmits, &labels}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	if labels != nil {
		if err := json.Unmarshal(labels, &t.Options.Labels); err != nil {
			return nil, damaged("task %s: labels: %v", t.ID, err)
		}
	}
	if ref != nil {
		t.Ref = *ref
	}
	t.State = states.State(state)
	if !t.State.Valid() {
		return nil, damaged("task %s: state %q is not a state", t.ID, state)
	}
	t.NextAt = joinTime(nextAt, nextNs)
	t.PollSince = joinTime(pollSince, pollNs)
	t.Created = joinTime(created, createdNs)
	t.Updated = joinTime(updated, updatedNs)
	t.LeaseUntil = joinTime(leaseUntil, leaseNs)
	t.Options.Deadline = joinTime(deadline, deadlineNs)
	t.Seq = uint64(seq)
	return &t, nil
}

// recordCols are the columns scanRecord reads, in order.
const recordCols = `seq, at, at_ns, from_state, event, to_state, code, detail, provider_id, possibly_charged`

func scanRecord(row pgx.Row) (persist.Record, error) {
	var (
		r               persist.Record
		seq             int64
		at              *time.Time
		atNs            int16
		from, ev, to    string
		code, detail, p string
	)
	if err := row.Scan(&seq, &at, &atNs, &from, &ev, &to, &code, &detail, &p, &r.PossiblyCharged); err != nil {
		return r, err
	}
	r.Seq, r.At = uint64(seq), joinTime(at, atNs)
	r.From, r.Event, r.To = states.State(from), transitions.Event(ev), states.State(to)
	r.Code, r.Detail, r.ProviderID = code, detail, p
	if !r.To.Valid() {
		return r, damaged("record %d: state %q is not a state", seq, to)
	}
	return r, nil
}

// nullText is s, or NULL when s is empty.
func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// claimable are the states in which an engine drives a task (and Claim
// leases it). The SQL below spells them out so that the planner matches
// the partial index tasks_claim.
var claimable = states.ActiveStates()
