package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{5 * time.Second, "5 s"},
		{30 * time.Second, "30 s"},
		{90 * time.Second, "90 s"},
		{5 * time.Minute, "5 min"},
		{1500 * time.Millisecond, "1.5s"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, duration(tt.d), tt.d)
	}
	assert.Equal(t, "3–10 s", durationRange(3*time.Second, 10*time.Second))
	assert.Equal(t, "30 s–2 min", durationRange(30*time.Second, 2*time.Minute))
}

func TestCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a|b", `a\|b`},
		{"two\nlines", "two<br>lines"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, cell(tt.in))
	}
}

func TestFence(t *testing.T) {
	tests := []struct{ body, want string }{
		{"a\n", "\n```text\na\n```\n"},
		{"a", "\n```text\na\n```\n"},
		{"x ```go y```", "\n````text\nx ```go y```\n````\n"},
	}
	for _, tt := range tests {
		var p page
		p.fence("text", tt.body)
		assert.Equal(t, tt.want, p.String())
	}
}
