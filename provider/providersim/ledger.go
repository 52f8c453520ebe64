package providersim

import (
	"fmt"
	"sort"
	"time"
)

// Kind is a kind of request, as the ledger counts them.
type Kind string

// The kinds of request.
const (
	// KindSubmit: in.php.
	KindSubmit Kind = "submit"
	// KindPoll: res.php action=get, with id or ids (a batch counts once).
	KindPoll Kind = "poll"
	// KindPollIDs: the ids asked for by action=get requests (a single id
	// counts 1, a batch of n counts n).
	KindPollIDs Kind = "poll_ids_total"
	// KindGet2: res.php action=get2.
	KindGet2 Kind = "get2"
	// KindBalance: res.php action=getbalance.
	KindBalance Kind = "balance"
	// KindReport: res.php action=reportgood or reportbad.
	KindReport Kind = "report"
	// KindPingback: res.php action=add_pingback, get_pingback or
	// del_pingback.
	KindPingback Kind = "pingback"
	// KindOther: a res.php request without a known action.
	KindOther Kind = "other"
)

// Fault is a kind of injected transport fault.
type Fault string

// The faults.
const (
	FaultHTTP500 Fault = "http500"
	FaultHTML502 Fault = "html502"
	FaultDrop    Fault = "drop"
	FaultSlow    Fault = "slow"
)

// FaultKey names a fault injected into a kind of request (KindSubmit,
// KindPoll, KindBalance or KindReport; get2 and unknown actions are polls).
type FaultKey struct {
	Kind  Kind
	Fault Fault
}

// Fingerprint identifies a submit's content: its method and parameters
// (image bytes included), without the key and the answer-format parameters.
// The same captcha submitted twice has the same fingerprint.
type Fingerprint uint64

// String returns the fingerprint in hex.
func (f Fingerprint) String() string { return fmt.Sprintf("%016x", uint64(f)) }

// Submits counts the submits of one fingerprint.
type Submits struct {
	// Requests is the number of in.php requests that carried it and were
	// processed (faults that answer before processing are not counted).
	Requests int
	// Accepted is the number of tasks accepted and charged for it.
	Accepted int
}

// TaskRecord is one accepted (charged) task.
type TaskRecord struct {
	ID          int64
	Method      string
	Fingerprint Fingerprint
	Cost        float64
	Accepted    time.Time
	// Ready is when the answer (or the drawn error) became available.
	Ready time.Time
	// Outcome is the drawn final answer: "" for a token, else the code.
	Outcome string
	// Polls counts the res.php requests that asked for this task (get,
	// batch get, get2).
	Polls int
	// Report is "", "good" or "bad".
	Report string
}

// Ledger is what the simulator saw and did: a copy, taken under the Sim's
// lock, that tests read freely.
type Ledger struct {
	// Requests counts every request that arrived, by kind (faulted ones
	// included).
	Requests map[Kind]int
	// Answers counts the answers the simulator gave, by code; "OK" for an
	// accepted submit, a token, a get2 answer or a balance. A batch counts
	// each of its answers; an answer lost to a Drop or Slow fault is still
	// counted (the server gave it).
	Answers map[string]int
	// Tasks are the accepted (charged) tasks, in order of acceptance.
	Tasks []TaskRecord
	// Cost is the total charged.
	Cost float64
	// Balance is the balance now.
	Balance float64
	// Bans counts the bans started, by code (MAX_USER_TURN, "ERROR: 1001",
	// "ERROR: 1002", "ERROR: 1005", IP_BANNED).
	Bans map[string]int
	// Faults counts the faults injected.
	Faults map[FaultKey]int
	// Polls counts the polls of each accepted task, by provider id (tasks
	// never polled are absent).
	Polls map[int64]int
	// Fingerprints counts the submits of each distinct content.
	Fingerprints map[Fingerprint]Submits
	// TooSoon counts the polls refused by the poll timing rules
	// (Config.PollTiming).
	TooSoon int
	// Pingbacks counts the pingbacks delivered (a 2xx answer), and
	// PingbacksFailed those that were not.
	Pingbacks, PingbacksFailed int
}

// Charged is the number of tasks accepted and charged.
func (l Ledger) Charged() int { return len(l.Tasks) }

// Orphaned returns the ids of tasks accepted (and charged) but never polled,
// in order of acceptance.
func (l Ledger) Orphaned() []int64 {
	var out []int64
	for _, t := range l.Tasks {
		if t.Polls == 0 {
			out = append(out, t.ID)
		}
	}
	return out
}

// Duplicates returns the fingerprints accepted more than once, sorted. A
// resubmit after ERROR_CAPTCHA_UNSOLVABLE is one, by design; anything else
// is a client that paid twice for the same captcha.
func (l Ledger) Duplicates() []Fingerprint {
	var out []Fingerprint
	for f, s := range l.Fingerprints {
		if s.Accepted > 1 {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
