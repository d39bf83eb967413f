package state

import (
	"runtime/debug"
)

// GoPanic carries a panic raised by a goroutine that worked for a batch
// (sending its script calls) to the goroutine waiting for that batch, which
// raises it again: panics are contained in one place, where the batch was
// handed over (pipeline), and they need the original stack there.
type GoPanic struct {
	Value any
	Stack []byte
}

func (p *GoPanic) Error() string { return "panic while sending a batch's script calls" }

// caught returns what a deferred recover() of a batch goroutine returned,
// as a GoPanic, or nil.
func caught(r any) *GoPanic {
	if r == nil {
		return nil
	}
	return &GoPanic{Value: r, Stack: debug.Stack()}
}

// testHookBuild, set by tests, sees each item as it is built (and may
// panic, as a bug would).
var testHookBuild func(Item)
