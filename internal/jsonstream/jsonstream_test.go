package jsonstream_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/internal/jsonstream"
)

// TestArrayMatchesEncoder: a streamed array is byte for byte what
// json.Encoder with a two-space indent writes for the whole slice.
func TestArrayMatchesEncoder(t *testing.T) {
	type item struct {
		ID   string            `json:"id"`
		Tags map[string]string `json:"tags,omitempty"`
		N    []int             `json:"n"`
	}
	for _, tc := range []struct {
		name  string
		items []item
	}{
		{"empty", []item{}},
		{"one", []item{{ID: "a", N: []int{1}}}},
		{"nested", []item{{ID: "a", Tags: map[string]string{"k": "v"}, N: []int{1, 2}}, {ID: "<b>&", N: nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetIndent("", "  ")
			require.NoError(t, enc.Encode(tc.items))

			var got bytes.Buffer
			arr := jsonstream.NewArray(&got)
			for _, it := range tc.items {
				require.NoError(t, arr.Add(it))
			}
			require.NoError(t, arr.Close())
			assert.Equal(t, want.String(), got.String())
			assert.Equal(t, len(tc.items), arr.Len())
		})
	}
}

func TestArrayReportsMarshalErrors(t *testing.T) {
	var got bytes.Buffer
	err := jsonstream.NewArray(&got).Add(func() {})
	require.Error(t, err)
	assert.Empty(t, got.String(), "nothing written for a value that cannot be written")
}

func ExampleLines() {
	var w jsonstream.Writer = jsonstream.NewLines(os.Stdout)
	for i := range 2 {
		_ = w.Add(map[string]int{"n": i})
	}
	_ = w.Close()
	fmt.Println("done")
	// Output:
	// {"n":0}
	// {"n":1}
	// done
}
