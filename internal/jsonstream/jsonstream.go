// Package jsonstream writes JSON as it is read: an array one element at a
// time, or JSON Lines, so that a listing of any size is written in flat
// memory. The CLI's list, replay and history and the dashboard's task list
// use it.
package jsonstream

import (
	"encoding/json"
	"io"
)

// Writer is a stream of JSON values: Add writes the next, Close ends the
// stream.
type Writer interface {
	Add(v any) error
	Close() error
}

// Array writes a JSON array one element at a time, laid out as
// json.Encoder with SetIndent("", "  ") lays out a whole one. Its W may be
// set until the first Add.
type Array struct {
	W io.Writer
	n int
}

// NewArray returns an Array writing to w.
func NewArray(w io.Writer) *Array { return &Array{W: w} }

// Add writes v as the array's next element.
func (a *Array) Add(v any) error {
	b, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return err
	}
	sep := ",\n  "
	if a.n == 0 {
		sep = "[\n  "
	}
	a.n++
	if _, err := io.WriteString(a.W, sep); err != nil {
		return err
	}
	_, err = a.W.Write(b)
	return err
}

// Len is the number of elements written.
func (a *Array) Len() int { return a.n }

// Close ends the array ("[]" when it is empty) and its line.
func (a *Array) Close() error {
	end := "\n]\n"
	if a.n == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(a.W, end)
	return err
}

// Lines writes one compact JSON value per line.
type Lines struct{ enc *json.Encoder }

// NewLines returns a Lines writing to w.
func NewLines(w io.Writer) *Lines { return &Lines{enc: json.NewEncoder(w)} }

// Add writes v and a newline.
func (l *Lines) Add(v any) error { return l.enc.Encode(v) }

// Close does nothing: JSON Lines have no end.
func (l *Lines) Close() error { return nil }
