package persist

import "github.com/google/uuid"

// NewID returns a new task id: a UUIDv7 in its text form. Ids made by one
// process sort, as strings, in the order they were made, so a store's id
// order is creation order.
func NewID() string {
	// NewV7 fails only when the system's random source does; nothing sensible
	// can be done without it.
	return uuid.Must(uuid.NewV7()).String()
}
