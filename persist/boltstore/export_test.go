package boltstore

// SetMigrateChunk makes migration transactions of n tasks until the test
// ends.
func SetMigrateChunk(n int) (restore func()) {
	old := migrateChunk
	migrateChunk = n
	return func() { migrateChunk = old }
}

// SetAfterMigrateChunk calls fn after each migration transaction until
// the test ends.
func SetAfterMigrateChunk(fn func(migrated int) error) (restore func()) {
	old := afterMigrateChunk
	afterMigrateChunk = fn
	return func() { afterMigrateChunk = old }
}
