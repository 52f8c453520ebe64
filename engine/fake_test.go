package engine_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/transitions"
)

// fakeAPI is a scripted provider: each submit takes the next scripted
// outcome (OK when the script is empty), and each poll of a provider task
// takes that task's next scripted answer (the token when none is left).
type fakeAPI struct {
	mu         sync.Mutex
	submits    int
	submitted  []string // provider ids accepted, in order
	submitPlan []error  // nil entry: accept
	pollPlan   []string // codes for every provider task, in order of its polls
	planTasks  int      // when > 0, only the first planTasks provider tasks follow pollPlan
	perTask    map[string]int
	pollCalls  int
	polledIDs  int
	batchSizes []int
	onSubmit   func(n int) // called with the submit's number, before it answers
	pollErrs   []error     // whole-request errors for the next polls, in order
	sent       []map[string]string
}

// sentParams returns the parameters of every submit, in order.
func (f *fakeAPI) sentParams() []map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

func newFake() *fakeAPI { return &fakeAPI{perTask: map[string]int{}} }

func apiErr(endpoint, code string) error {
	return &provider.APIError{Endpoint: endpoint, Code: code, Class: transitions.Classify(code)}
}

func (f *fakeAPI) Submit(ctx context.Context, req provider.Request) (string, error) {
	if err := provider.Validate(req); err != nil {
		return "", err
	}
	f.mu.Lock()
	f.submits++
	f.sent = append(f.sent, maps.Clone(req.Params))
	n := f.submits
	hook := f.onSubmit
	var err error
	if len(f.submitPlan) > 0 {
		err = f.submitPlan[0]
		f.submitPlan = f.submitPlan[1:]
	}
	f.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := strconv.Itoa(1000 + n)
	f.submitted = append(f.submitted, id)
	return id, nil
}

func (f *fakeAPI) Poll(ctx context.Context, ids []string) ([]provider.Answer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pollCalls++
	f.polledIDs += len(ids)
	f.batchSizes = append(f.batchSizes, len(ids))
	if len(f.pollErrs) > 0 {
		err := f.pollErrs[0]
		f.pollErrs = f.pollErrs[1:]
		return nil, err
	}
	out := make([]provider.Answer, len(ids))
	for i, id := range ids {
		k := f.perTask[id]
		f.perTask[id] = k + 1
		n, _ := strconv.Atoi(id)
		planned := f.planTasks == 0 || n-1000 <= f.planTasks
		if planned && k < len(f.pollPlan) && f.pollPlan[k] != "" {
			code := f.pollPlan[k]
			out[i] = provider.Answer{Code: code, Class: transitions.Classify(code)}
			continue
		}
		out[i] = provider.Answer{Token: "token-" + id}
	}
	return out, nil
}

func (f *fakeAPI) counts() (submits, polls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.submits, f.pollCalls
}

// repeat returns n copies of code.
func repeat(code string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = code
	}
	return out
}

func repeatErr(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

var errReset = errors.New("connection reset by peer")

func transportErr(charged bool) error {
	return &provider.TransportError{Endpoint: "in.php", PossiblyCharged: charged, Err: fmt.Errorf("post: %w", errReset)}
}
