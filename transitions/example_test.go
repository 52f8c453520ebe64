package transitions_test

import (
	"fmt"

	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func ExampleLookup() {
	e, _ := transitions.Lookup("ERROR_NO_SLOT_AVAILABLE")
	fmt.Println(e.Class, e.Where, e.RetryDelay)
	fmt.Println(transitions.Classify("ERROR_SOMETHING_NEW"))
	// Output:
	// transient in.php 5s
	// unknown
}

func ExampleNext() {
	to, _ := transitions.Next(states.Polling, transitions.ResubmitNeeded)
	fmt.Println(to)
	_, err := transitions.Next(states.Done, transitions.Solved)
	fmt.Println(err)
	// Output:
	// Resubmitting
	// transitions: no edge from Done on "solved"
}
