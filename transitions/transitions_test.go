package transitions_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// TestGuideClasses pins every code of the error guide to the guide's class.
func TestGuideClasses(t *testing.T) {
	tests := []struct {
		code  string
		class transitions.Class
		delay time.Duration
	}{
		{"ERROR_WRONG_USER_KEY", transitions.ClassPermanent, 0},
		{"ERROR_KEY_DOES_NOT_EXIST", transitions.ClassPermanent, 0},
		{"ERROR_WRONG_ID_FORMAT", transitions.ClassPermanent, 0},
		{"ERROR_WRONG_CAPTCHA_ID", transitions.ClassPermanent, 0},
		{"ERROR_BAD_DUPLICATES", transitions.ClassPermanent, 0},
		{"ERROR_IMAGE_TYPE_NOT_SUPPORTED", transitions.ClassPermanent, 0},
		{"ERROR_PAGEURL", transitions.ClassPermanent, 0},
		{"ERROR_BAD_PARAMETERS", transitions.ClassPermanent, 0},
		{"ERROR_GOOGLEKEY", transitions.ClassPermanent, 0},
		{"ERROR_CAPTCHAIMAGE_BLOCKED", transitions.ClassPermanent, 0},
		{"ERROR_BAD_TOKEN_OR_PAGEURL", transitions.ClassPermanent, 0},
		{"ERROR_NO_SLOT_AVAILABLE", transitions.ClassTransient, 5 * time.Second},
		{"ERROR_TOO_MUCH_REQUESTS", transitions.ClassTransient, 0},
		{"MAX_USER_TURN", transitions.ClassTransient, 10 * time.Second},
		{"ERROR_ZERO_BALANCE", transitions.ClassAccount, 0},
		{"ERROR_IP_NOT_ALLOWED", transitions.ClassAccount, 0},
		{"ERROR_IP_BANNED", transitions.ClassAccount, 0},
		{"CAPCHA_NOT_READY", transitions.ClassNotReady, 0},
		{"ERROR_CAPTCHA_UNSOLVABLE", transitions.ClassResubmit, 0},
		{"ERROR_TOKEN_EXPIRED", transitions.ClassResubmit, 0},
		{"ERROR_EMPTY_ACTION", transitions.ClassPermanent, 0},
	}
	guide := 0
	for _, e := range transitions.Catalogue() {
		if e.FromGuide {
			guide++
		}
	}
	assert.Equal(t, len(tests), guide, "every guide code is pinned here")
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			e, ok := transitions.Lookup(tt.code)
			require.True(t, ok)
			assert.True(t, e.FromGuide)
			assert.Equal(t, tt.class, e.Class)
			assert.Equal(t, tt.delay, e.RetryDelay)
		})
	}
	tmr, _ := transitions.Lookup("ERROR_TOO_MUCH_REQUESTS")
	assert.Equal(t, 3*time.Second, tmr.BackoffMin)
	assert.Equal(t, 10*time.Second, tmr.BackoffMax)
}

// TestProviderCodes pins the codes added from the provider's documentation.
func TestProviderCodes(t *testing.T) {
	tests := []struct {
		code  string
		class transitions.Class
		ban   time.Duration
	}{
		{"ERROR_WRONG_FILE_EXTENSION", transitions.ClassPermanent, 0},
		{"ERROR_ZERO_CAPTCHA_FILESIZE", transitions.ClassPermanent, 0},
		{"ERROR_TOO_BIG_CAPTCHA_FILESIZE", transitions.ClassPermanent, 0},
		{"ERROR_UPLOAD", transitions.ClassPermanent, 0},
		{"ERROR_WRONG_GOOGLEKEY", transitions.ClassPermanent, 0},
		{"TOO_MANY_BAD_IMAGES", transitions.ClassAccount, 0},
		{"IP_BANNED", transitions.ClassAccount, 5 * time.Minute},
		{"ERROR_BAD_PROXY", transitions.ClassPermanent, 0},
		{"ERROR_PROXY_CONNECTION_FAILED", transitions.ClassPermanent, 0},
		{"ERROR_REPORT_NOT_RECORDED", transitions.ClassPermanent, 0},
		{"ERROR_DUPLICATE_REPORT", transitions.ClassPermanent, 0},
		{"ERROR_IP_ADDRES", transitions.ClassPermanent, 0},
		{"ERROR_SERVER_ERROR", transitions.ClassTransient, 0},
		{"ERROR_INTERNAL_SERVER_ERROR", transitions.ClassTransient, 0},
		{"ERROR: 1001", transitions.ClassTransient, 10 * time.Minute},
		{"ERROR: 1002", transitions.ClassAccount, 5 * time.Minute},
		{"ERROR: 1003", transitions.ClassTransient, 30 * time.Second},
		{"ERROR: 1004", transitions.ClassAccount, 10 * time.Minute},
		{"ERROR: 1005", transitions.ClassTransient, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			e, ok := transitions.Lookup(tt.code)
			require.True(t, ok)
			assert.False(t, e.FromGuide)
			assert.Equal(t, tt.class, e.Class)
			assert.Equal(t, tt.ban, e.Ban)
			assert.Equal(t, tt.ban > 0, e.IsBan())
		})
	}
	mut, _ := transitions.Lookup("MAX_USER_TURN")
	assert.True(t, mut.IsBan(), "MAX_USER_TURN blocks the whole account")
}

func TestCatalogueWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range transitions.Catalogue() {
		assert.False(t, seen[e.Code], "duplicate %s", e.Code)
		seen[e.Code] = true
		assert.Contains(t, transitions.Classes(), e.Class, e.Code)
		assert.Contains(t, []transitions.Where{transitions.InPHP, transitions.ResPHP, transitions.Both, transitions.Engine}, e.Where, e.Code)
		assert.NotEmpty(t, e.Meaning, e.Code)
		assert.NotEmpty(t, e.Fix, e.Code)
		if e.Where != transitions.Engine {
			assert.True(t, transitions.IsCode(e.Code), e.Code)
		}
	}
	assert.Len(t, transitions.Codes(), len(seen))
}

func TestClassifyUnknown(t *testing.T) {
	assert.Equal(t, transitions.ClassUnknown, transitions.Classify("ERROR_NEVER_SEEN"))
	assert.Equal(t, transitions.ClassUnknown, transitions.Classify(""))
	assert.Equal(t, transitions.ClassResubmit, transitions.Classify(" ERROR_CAPTCHA_UNSOLVABLE\n"))
	assert.True(t, transitions.IsCode("ERROR_NEVER_SEEN"))
	assert.False(t, transitions.IsCode("03AGdBq24PBCbwiDRaS_MJ7Z"))
}

// TestEveryPair checks every (state, event) pair: the legal ones lead where
// the contract says, every other pair is refused.
func TestEveryPair(t *testing.T) {
	legal := map[states.State]map[transitions.Event]states.State{
		states.Submitting: {
			transitions.SubmitSending: states.Submitting, transitions.PossiblyCharged: states.Submitting,
			transitions.SubmitAccepted: states.Polling, transitions.TransientError: states.Backoff,
			transitions.RateLimited: states.Backoff, transitions.RetriesExhausted: states.Failed,
			transitions.PermanentError: states.Failed, transitions.AccountError: states.NeedsAccountFix,
			transitions.BreakerOpen: states.NeedsAccountFix, transitions.UnknownError: states.Failed,
			transitions.Cancelled: states.Failed, transitions.DeadlinePassed: states.Failed,
		},
		states.Backoff: {transitions.BackoffElapsed: states.Submitting, transitions.BreakerOpen: states.NeedsAccountFix,
			transitions.Cancelled: states.Failed, transitions.DeadlinePassed: states.Failed},
		states.Polling: {
			transitions.NotReady: states.Polling, transitions.TransientError: states.Polling,
			transitions.RateLimited: states.Polling, transitions.Solved: states.Done,
			transitions.ResubmitNeeded: states.Resubmitting, transitions.ResubmitsExhausted: states.Failed,
			transitions.PollTimeout: states.Failed, transitions.PermanentError: states.Failed,
			transitions.AccountError: states.NeedsAccountFix, transitions.UnknownError: states.Failed,
			transitions.Cancelled: states.Failed, transitions.DeadlinePassed: states.Failed,
		},
		states.Resubmitting: {transitions.ResubmitStarted: states.Submitting, transitions.BreakerOpen: states.NeedsAccountFix,
			transitions.Cancelled: states.Failed, transitions.DeadlinePassed: states.Failed},
		states.NeedsAccountFix: {transitions.AccountFixed: states.Submitting},
		states.Done:            {},
		states.Failed:          {},
	}
	n := 0
	for _, from := range states.All() {
		for _, ev := range append(transitions.Events(), transitions.Created) {
			want, ok := legal[from][ev]
			got, err := transitions.Next(from, ev)
			if ok {
				n++
				require.NoError(t, err, "%s on %s", from, ev)
				assert.Equal(t, want, got, "%s on %s", from, ev)
			} else {
				assert.Error(t, err, "%s on %s must be illegal", from, ev)
			}
		}
	}
	assert.Equal(t, len(transitions.Table()), n, "the table has no edge the test does not know")
}

func TestTerminalStatesHaveNoExit(t *testing.T) {
	for _, e := range transitions.Table() {
		assert.False(t, e.From.Terminal(), "edge leaves terminal %s", e.From)
		assert.True(t, e.From.Valid())
		assert.True(t, e.To.Valid())
		assert.NotEmpty(t, e.Why)
	}
}

// TestIsCode: only catalogue codes and the ERROR family are codes; an
// image's answer that merely looks like one is an answer.
func TestIsCode(t *testing.T) {
	for _, tc := range []struct {
		s    string
		code bool
	}{
		{"CAPCHA_NOT_READY", true},
		{"CAPTCHA_NOT_READY", true},
		{"MAX_USER_TURN", true},
		{"IP_BANNED", true},
		{"REPORT_NOT_RECORDED", true},
		{"ERROR_NEVER_SEEN", true},
		{"ERROR: 1009", true},
		{" ERROR_ZERO_BALANCE\n", true},
		{"AB_CD", false},
		{"NEW_LIMIT", false},
		{"CAPCHA_SOMETHING", false},
		{"ERRORS", false},
		{"ERROR", false},
		{"W68HP", false},
		{"03AGdBq24PBCbwiDRaS_MJ7Z", false},
		{"", false},
	} {
		assert.Equal(t, tc.code, transitions.IsCode(tc.s), "%q", tc.s)
	}
}

// TestProviderDocCodes pins the class of the codes added from the
// provider's docs and compatible services (issue 12, point 9).
func TestProviderDocCodes(t *testing.T) {
	for code, class := range map[string]transitions.Class{
		"CAPTCHA_NOT_READY":        transitions.ClassNotReady,
		"ERROR_NO_SUCH_METHOD":     transitions.ClassPermanent,
		"ERROR_NO_SUCH_CAPCHA_ID":  transitions.ClassPermanent,
		"ERROR_IP_BLOCKED":         transitions.ClassAccount,
		"ERROR_DOMAIN_NOT_ALLOWED": transitions.ClassPermanent,
		"ERROR_CAPTCHA_ID":         transitions.ClassPermanent,
		"REPORT_NOT_RECORDED":      transitions.ClassPermanent,
	} {
		e, ok := transitions.Lookup(code)
		require.True(t, ok, code)
		assert.Equal(t, class, e.Class, code)
		assert.False(t, e.FromGuide, code)
	}
}
