// Command captchafsm solves CAPTCHAs through CaptchaAI with a persisted
// state machine. Run "captchafsm demo" for the main job with no key and no
// network, and "captchafsm --help" for every command.
package main

import (
	"context"
	"os"

	"github.com/captchafsm/captchafsm/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
