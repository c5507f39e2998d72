package wasm

import (
	"context"
	"time"

	"golang.org/x/sys/unix"
)

// A module runs on the goroutine that calls it. kavach locks that goroutine
// to its OS thread for the whole exec, so the thread's CPU clock is the
// module's CPU time (plus the WASI host calls it makes), and another
// goroutine can read that clock through the thread's clock id.

// threadClock returns the CPU clock id of thread tid (Linux
// MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)).
func threadClock(tid int) int32 { return (^int32(tid))<<3 | 6 }

// cpuTime reads a CPU clock.
func cpuTime(clock int32) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// watchCPU calls exceeded once the thread's CPU time passes budget, and
// returns when ctx is done. A thread cannot burn CPU faster than wall time,
// so sleeping for the remaining budget never overshoots by more than one
// timer tick: the watchdog wakes a handful of times per exec.
func watchCPU(ctx context.Context, clock int32, start, budget time.Duration, exceeded func()) {
	t := time.NewTimer(budget)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		left := budget - (cpuTime(clock) - start)
		if left <= 0 {
			exceeded()
			return
		}
		t.Reset(max(left, time.Millisecond))
	}
}
