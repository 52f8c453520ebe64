package fsm_test

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func ExampleReplay() {
	history := []persist.Record{
		{Seq: 1, Event: transitions.Created, To: states.Submitting},
		{Seq: 2, From: states.Submitting, Event: transitions.SubmitSending, To: states.Submitting},
		{Seq: 3, From: states.Submitting, Event: transitions.SubmitAccepted, To: states.Polling},
		{Seq: 4, From: states.Polling, Event: transitions.NotReady, To: states.Polling},
		{Seq: 5, From: states.Polling, Event: transitions.Solved, To: states.Done},
	}
	s, err := fsm.Replay(history)
	fmt.Println(s, err)

	// A tampered history: a task that was solved twice.
	tampered := append(history, persist.Record{Seq: 6, From: states.Done, Event: transitions.Solved, To: states.Done})
	_, err = fsm.Replay(tampered)
	fmt.Println(err)
	fmt.Println(errors.Is(err, fsm.ErrReplay), errors.Is(err, fsm.ErrIllegal))
	// Output:
	// Done <nil>
	// fsm: replay refused at seq 6 (Done --solved--> Done): no transition from Done on "solved"
	// true true
}

func ExampleStep() {
	to, err := fsm.Step(states.Polling, transitions.NotReady)
	fmt.Println(to, err)
	to, err = fsm.Step(states.Done, transitions.Solved)
	fmt.Println(to, err)
	// Output:
	// Polling <nil>
	// Done fsm: illegal move: no transition from Done on "solved"
}

func ExampleApply() {
	task := &persist.Task{ID: "t1", Method: "base64", State: states.Polling, PollSince: time.Unix(0, 0)}
	d, _ := transitions.Decide(transitions.Input{State: task.State, What: transitions.Answer,
		Code: "ERROR_CAPTCHA_UNSOLVABLE", Polled: true, Now: time.Unix(30, 0),
		Limits: transitions.Limits{MaxResubmits: 2, PollTimeout: time.Minute}})
	next, rec, err := fsm.Apply(task, d)
	fmt.Println(rec.From, "->", rec.To, rec.Event, rec.Code, err)
	fmt.Println(next.Resubmits, next.Polls, rec.Detail)
	// Output:
	// Polling -> Resubmitting resubmit_needed ERROR_CAPTCHA_UNSOLVABLE <nil>
	// 1 1 resubmit 1 of 2
}

func ExampleMermaid() {
	// The whole diagram has one line per edge of transitions.Table; here,
	// the start and the lines that touch Done.
	for _, line := range strings.Split(fsm.Mermaid(), "\n") {
		if strings.HasPrefix(line, "stateDiagram") || strings.Contains(line, "[*] -->") || strings.Contains(line, "Done") {
			fmt.Println(line)
		}
	}
	// Output:
	// stateDiagram-v2
	//     [*] --> Submitting
	//     Polling --> Done: solved
	//     Done --> [*]
}

func ExampleMermaidHighlight() {
	d := fsm.MermaidHighlight(states.Polling)
	lines := strings.Split(strings.TrimSpace(d), "\n")
	fmt.Println(lines[len(lines)-1])
	// Output:
	// class Polling current
}
