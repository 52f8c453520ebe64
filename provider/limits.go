package provider

import (
	"time"

	"github.com/captchafsm/captchafsm/transitions"
)

// The provider's rate rules, as its documentation states them. The engine
// paces itself under them and the simulator enforces them: both read these
// names, so a rule changes in one place. Ban lengths are not copied here:
// Ban reads them from the catalogue entry of the code that announces them.
const (
	// SubmitBurst is the most in.php requests an account may send in any
	// SubmitBurstWindow; one more is answered CodeSubmitBurst and blocks
	// in.php for Ban(CodeSubmitBurst).
	SubmitBurst       = 60
	SubmitBurstWindow = 3 * time.Second
	CodeSubmitBurst   = "MAX_USER_TURN"

	// PollBudgetBase and PollBudgetPerCaptcha make the res.php budget: at
	// most PollBudgetPerCaptcha × captchas accepted + PollBudgetBase
	// requests in any PollBudgetWindow. One more is answered CodePollBudget
	// and blocks res.php for Ban(CodePollBudget). See PollBudget.
	PollBudgetBase       = 1200
	PollBudgetPerCaptcha = 20
	PollBudgetWindow     = time.Hour
	CodePollBudget       = "ERROR: 1005"

	// FloodAnswers ERROR_NO_SLOT_AVAILABLE (or ERROR_ZERO_BALANCE) answers
	// within FloodWindow earn CodeNoSlotFlood (or CodeZeroBalanceFlood):
	// in.php is blocked for the code's Ban.
	FloodAnswers         = 120
	FloodWindow          = time.Minute
	CodeNoSlotFlood      = "ERROR: 1001"
	CodeZeroBalanceFlood = "ERROR: 1002"

	// FirstPollMin is how long after its submit a task may first be polled
	// ("make a timeout: 5 seconds"); FirstPollMinToken is the same for the
	// reCAPTCHA-class token methods (IsTokenMethod), whose docs ask for 10
	// to 20 seconds; FirstPollTokenAdvised is the upper end, what the docs
	// advise. PollIntervalMin is the least time between two polls of one
	// task ("repeat your request in 5 seconds"). A poll sooner than these
	// is answered CodePollTooSoon by a simulator that enforces them.
	FirstPollMin          = 5 * time.Second
	FirstPollMinToken     = 10 * time.Second
	FirstPollTokenAdvised = 20 * time.Second
	PollIntervalMin       = 5 * time.Second
	CodePollTooSoon       = "ERROR_TOO_MUCH_REQUESTS"

	// BadKeyFlood requests with a wrong or unknown key from one IP within
	// BadKeyWindow earn CodeBadKeyBan for that IP. The docs say only "many
	// frequent attempts"; the figure is the simulator's.
	BadKeyFlood   = 20
	BadKeyWindow  = time.Minute
	CodeBadKeyBan = "IP_BANNED"
)

// PollBudget is how many res.php requests the provider allows in a
// PollBudgetWindow in which captchas tasks were accepted.
func PollBudget(captchas int) int { return PollBudgetPerCaptcha*captchas + PollBudgetBase }

// FirstPoll is the least wait between submitting a task of method and
// polling it: FirstPollMinToken for token methods, else FirstPollMin.
func FirstPoll(method string) time.Duration {
	if IsTokenMethod(method) {
		return FirstPollMinToken
	}
	return FirstPollMin
}

// Ban is the length of the block code announces, from its catalogue entry;
// zero for a code that announces none.
func Ban(code string) time.Duration {
	e, _ := transitions.Lookup(code)
	return e.Ban
}
