package cli

import (
	"bufio"
	"io"
	"text/tabwriter"
)

// The commands that read the whole database (list, replay --all, history)
// write as they read, so that their memory stays flat whatever the
// database holds: JSON arrays one element at a time, tables in blocks.

// tableBlock is how many rows a streamed table aligns at once: its
// columns are as wide as the widest cell of the block.
const tableBlock = 1000

// blockTable is a tab-separated table aligned in blocks of tableBlock
// rows, each written as soon as it is full.
type blockTable struct {
	w    io.Writer
	tw   *tabwriter.Writer
	rows int
}

func newBlockTable(w io.Writer) *blockTable {
	return &blockTable{w: w, tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
}

// row writes one line (cells separated by tabs, ending in a newline).
func (t *blockTable) row(line string) error {
	if _, err := io.WriteString(t.tw, line); err != nil {
		return err
	}
	if t.rows++; t.rows%tableBlock == 0 {
		return t.tw.Flush()
	}
	return nil
}

func (t *blockTable) flush() error { return t.tw.Flush() }

// bufferedOut wraps a command's output in a buffer, so that rows written
// one by one reach the terminal or pipe in large writes; the caller
// flushes it.
func bufferedOut(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 64<<10) }
