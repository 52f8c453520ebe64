// Package fleettest holds the fleet test of issue 8: three engine
// processes on one PostgreSQL database (persist/pgstore) and one simulator
// solve a batch while one of them is killed with SIGKILL, then the account
// runs dry and one engine's ERROR_ZERO_BALANCE stops them all. It has no
// API: the test is the package.
//
// It needs a PostgreSQL server (CAPTCHAFSM_TEST_PG; `source
// .ci/postgres.sh` starts one) and skips without. It solves 200 tasks by
// default, CAPTCHAFSM_FLEET_TASKS of them when that is set (the issue's
// full run: 3000, about three minutes at the provider's submit rate).
package fleettest
