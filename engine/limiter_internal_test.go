package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestSubmitGroup: the group is what the rate lets leave in 200 ms, 1 to
// 3; a slow rate is never bunched.
func TestSubmitGroup(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		want int
	}{
		{0.01, 1}, {1, 1}, {4.9, 1}, {5, 1}, {9.99, 1}, {10, 2}, {14.9, 2}, {15, 3}, {19, 3}, {20, 3},
	} {
		assert.Equal(t, tc.want, submitGroup(tc.rate), "rate %v", tc.rate)
	}
}

// TestGroupDelay: the first submit of a group waits until the bucket holds
// a token for each submit due (up to the group); a lone one does not wait.
// TestBucketKeepsWholeGroups: the bucket's rate lets only whole groups
// into a second of ⌈submit_rate⌉, and never more than the window's 19/s.
func TestBucketKeepsWholeGroups(t *testing.T) {
	for _, tc := range []struct {
		rate, want float64
		group      int
	}{
		{20, 18, 3}, {19, 18, 3}, {16, 15, 3}, {15, 15, 3}, {14, 14, 2}, {10, 10, 2}, {7.5, 7.5, 1}, {5, 5, 1}, {0.5, 0.5, 1},
	} {
		l := newLimiter(tc.rate, true)
		assert.Equal(t, tc.want, float64(l.bucket.Limit()), "submit_rate %v", tc.rate)
		assert.Equal(t, tc.group, l.groupSize(), "submit_rate %v", tc.rate)
	}
}

func TestGroupDelay(t *testing.T) {
	l := newLimiter(20, true) // 18/s, groups of 3
	now := time.Unix(1000, 0)
	for range 3 {
		assert.Zero(t, l.submitDelay(now)) // the bucket starts full: 3
	}
	assert.Zero(t, l.groupDelay(now, 1), "a lone submit waits for its own token only")
	d := l.groupDelay(now, 3)
	assert.InDelta(t, (3 * time.Second / 18).Seconds(), d.Seconds(), 1e-6)
	assert.Equal(t, l.groupDelay(now, 3), l.groupDelay(now, 7), "no group is larger than 3")
	later := now.Add(d)
	assert.Zero(t, l.groupDelay(later, 3))
	for range 3 {
		assert.Zero(t, l.submitDelay(later))
	}
	assert.Positive(t, l.submitDelay(later))

	fleet := newLimiter(20, false) // a fleet's slots pace it
	assert.Zero(t, fleet.groupDelay(now, 3))
	assert.Equal(t, 1, fleet.groupSize())
}
