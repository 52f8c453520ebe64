package fsm

import (
	"context"
	"testing"

	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// BenchmarkNewMachinePerStep is what Step avoids: a looplab machine built
// per move.
func BenchmarkNewMachinePerStep(b *testing.B) {
	b.ReportAllocs()
	d, err := loadDefinition()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		f := d.newLooplab(states.Polling)
		if _, _, err := d.fire(ctx, f, states.Polling, transitions.Solved); err != nil {
			b.Fatal(err)
		}
	}
}
