package gateway

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/captchafsm/captchafsm/provider/protocol"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestFailedAndParkedResults(t *testing.T) {
	for _, tc := range []struct {
		parked       bool
		code, opened string
		want         string
	}{
		{false, "ERROR_CAPTCHA_UNSOLVABLE", "", "ERROR_CAPTCHA_UNSOLVABLE"},
		{false, "ERROR_PAGEURL", "", "ERROR_PAGEURL"},
		{false, "ERROR_NO_SLOT_AVAILABLE", "", "ERROR_NO_SLOT_AVAILABLE"},
		{false, "POLL_TIMEOUT", "", "ERROR_CAPTCHA_UNSOLVABLE"},
		{false, "CANCELLED", "", "ERROR_CAPTCHA_UNSOLVABLE"},
		{false, "TRANSPORT_ERROR", "", "ERROR_CAPTCHA_UNSOLVABLE"},
		{false, "INVALID_REQUEST", "", "ERROR_BAD_PARAMETERS"},
		{false, "ERROR_KEY_DOES_NOT_EXIST", "", protocol.CodeInternal},
		{false, "ERROR_WRONG_CAPTCHA_ID", "", "ERROR_CAPTCHA_UNSOLVABLE"},
		{false, "ERROR: 1001", "", "ERROR_CAPTCHA_UNSOLVABLE"},
		{false, "SOMETHING_NEW|x", "", "ERROR_CAPTCHA_UNSOLVABLE"},
		{true, "ERROR_ZERO_BALANCE", "", "ERROR_ZERO_BALANCE"},
		{true, "ERROR_IP_NOT_ALLOWED", "", "ERROR_IP_NOT_ALLOWED"},
		{true, "ERROR: 1002", "", "ERROR_ZERO_BALANCE"},
		{true, "ERROR_IP_BLOCKED", "", "IP_BANNED"},
		{true, "BREAKER_OPEN", "", "ERROR_ZERO_BALANCE"},
		{true, "BREAKER_OPEN", "ERROR_IP_NOT_ALLOWED", "ERROR_IP_NOT_ALLOWED"},
		{true, "BREAKER_OPEN", "ERROR: 1004", "IP_BANNED"},
		{true, "SOMETHING_NEW", "", "ERROR_ZERO_BALANCE"},
	} {
		var got protocol.Result
		if tc.parked {
			got = parkedResult(tc.code, tc.opened)
		} else {
			got = failedResult(tc.code)
		}
		assert.Equal(t, tc.want, got.Code, "%+v", tc)
		assert.NotEmpty(t, got.Text, "%+v: error_text says why", tc)
		assert.True(t, clientCodes[got.Code] || got.Code == protocol.CodeInternal, "%+v: clients know %s", tc, got.Code)
	}
}

// TestAnswerRulesCoverTheEngineCodes: every engine code a settled task can
// carry has a rule, since no client knows them.
func TestAnswerRulesCoverTheEngineCodes(t *testing.T) {
	for _, e := range transitions.Catalogue() {
		if e.Where != transitions.Engine {
			continue
		}
		_, failed := ruleOf["Failed"][e.Code]
		_, parked := ruleOf["NeedsAccountFix"][e.Code]
		assert.True(t, failed || parked, "engine code %s has no answer rule", e.Code)
	}
}

func TestShapes(t *testing.T) {
	for _, tc := range []struct {
		method, token, plain, json string
	}{
		{"turnstile", "0.abc", "0.abc", ""},
		{"geetest", `{"geetest_challenge":"c1","geetest_validate":"v1","geetest_seccode":"s1_jordan"}`,
			"challenge:c1,validate:v1,seccode:s1_jordan", `{"geetest_challenge":"c1","geetest_validate":"v1","geetest_seccode":"s1_jordan"}`},
		{"geetest_v4", `{"captcha_id":"a","lot_number":"b","pass_token":"c","gen_time":1700000000,"captcha_output":"d"}`,
			"captcha_id:a,lot_number:b,pass_token:c,gen_time:1700000000,captcha_output:d", `{"captcha_id":"a","lot_number":"b","pass_token":"c","gen_time":1700000000,"captcha_output":"d"}`},
		{"geetest", "challenge:c1,validate:v1,seccode:s1", "challenge:c1,validate:v1,seccode:s1",
			`{"geetest_challenge":"c1","geetest_validate":"v1","geetest_seccode":"s1"}`},
		{"geetest", "challenge:c1,other:v1,seccode:s1", "challenge:c1,other:v1,seccode:s1", ""},
		{"post", "{not json", "{not json", ""},
		{"post", `{"a":1} trailing`, `{"a":1} trailing`, ""},
	} {
		plain, js := shapes(tc.method, tc.token)
		assert.Equal(t, tc.plain, plain, tc.token)
		if tc.json == "" {
			assert.Nil(t, js, tc.token)
			continue
		}
		assert.JSONEq(t, tc.json, string(js), tc.token)
		assert.True(t, json.Valid(js))
	}
}
