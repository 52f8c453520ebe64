package states_test

import (
	"fmt"

	"github.com/captchafsm/captchafsm/states"
)

func ExampleParse() {
	s, err := states.Parse("needs-account-fix")
	fmt.Println(s, s.Terminal(), err)
	_, err = states.Parse("Sleeping")
	fmt.Println(err)
	// Output:
	// NeedsAccountFix false <nil>
	// states: unknown state "Sleeping" (want one of Submitting, Backoff, Polling, Resubmitting, Done, Failed, NeedsAccountFix)
}
