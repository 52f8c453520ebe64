package boltstore_test

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// TestLookupOfAnIDWithNULIsNotFound: no id holds a 0x00 (Create refuses
// them), so a lookup of such a string (a dashboard path, a CLI argument)
// is not found. In schema 3 the key a task is read from, id+0x01, is for
// such a string the key of another task's record (id "a", 0x00, seq 1
// is "a\x00"+7 zero bytes, then 0x01): the record must not be read as a
// task and reported as damage, and Find must go on to the refs.
func TestLookupOfAnIDWithNULIsNotFound(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "nul.db"), nil)
	task := &persist.Task{ID: "a", Method: "turnstile"}
	require.NoError(t, s.Create(ctx, task))
	for range 3 {
		require.NoError(t, s.Apply(ctx, task, &persist.Record{From: states.Submitting, Event: transitions.SubmitSending, To: states.Submitting}))
	}
	ref := &persist.Task{ID: "b", Ref: "a\x00\x00", Method: "turnstile"}
	require.NoError(t, s.Create(ctx, ref))
	for seq := uint64(1); seq <= 4; seq++ {
		// The first 8 bytes of the key of record seq of "a", then what
		// taskKey adds: a lookup of that string reads record seq.
		k := binary.BigEndian.AppendUint64([]byte("a\x00"), seq)
		id := string(k[:len(k)-1])
		if k[len(k)-1] != 1 {
			continue
		}
		_, err := s.Get(ctx, id)
		assert.ErrorIs(t, err, persist.ErrNotFound, "Get(%q)", id)
		assert.NotErrorIs(t, err, persist.ErrNotOurs, "Get(%q)", id)
	}
	for _, id := range []string{"a\x00\x00\x00\x00\x00\x00\x00", "a\x00\x00\x00\x00\x00\x00", "a\x00"} {
		_, err := s.Get(ctx, id)
		assert.ErrorIs(t, err, persist.ErrNotFound, "Get(%q)", id)
		_, err = s.History(ctx, id)
		assert.ErrorIs(t, err, persist.ErrNotFound, "History(%q)", id)
		assert.NotErrorIs(t, err, persist.ErrNotOurs, "History(%q)", id)
	}
	got, err := persist.Find(ctx, s, "a\x00\x00")
	require.NoError(t, err)
	assert.Equal(t, "b", got.ID)
}
