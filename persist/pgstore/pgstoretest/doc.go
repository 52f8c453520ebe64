// Package pgstoretest opens persist/pgstore stores for tests on the
// PostgreSQL server named by the environment variable CAPTCHAFSM_TEST_PG,
// each in a schema of its own that is dropped when the test ends, and
// skips the test with a message naming .ci/postgres.sh when the variable
// is unset. No mock database: a test that needs PostgreSQL runs on one.
package pgstoretest
