package cli_test

import (
	"context"
	"fmt"
	"os"

	"github.com/captchafsm/captchafsm/internal/cli"
)

// Execute runs a command tree on arguments; here the catalogue's entry of
// one code, as JSON.
func ExampleExecute() {
	root := cli.NewRoot(nil)
	root.SetOut(os.Stdout)
	code := cli.Execute(context.Background(), root, []string{"errors", "MAX_USER_TURN", "--json"})
	fmt.Println("exit", code)
	// Output:
	// [
	//   {
	//     "code": "MAX_USER_TURN",
	//     "class": "transient",
	//     "where": "in.php",
	//     "meaning": "The account's queue is full (more than 60 in.php requests in 3 s).",
	//     "fix": "Nothing: all submits wait 10 seconds; lower submit_rate if it recurs.",
	//     "retry_delay": "10s",
	//     "backoff": "",
	//     "ban": "10s"
	//   }
	// ]
	// exit 0
}
