package cgroup

import (
	"context"
	"fmt"
	"strconv"
)

// Freeze stops every process in the cgroup and waits until the kernel
// reports the cgroup frozen.
func (c *Cgroup) Freeze(ctx context.Context) error {
	if err := c.setFrozen(ctx, true); err != nil {
		return fmt.Errorf("freeze %s: %w", c.name, err)
	}
	return nil
}

// Thaw resumes the processes stopped by Freeze and waits until they run.
func (c *Cgroup) Thaw(ctx context.Context) error {
	if err := c.setFrozen(ctx, false); err != nil {
		return fmt.Errorf("thaw %s: %w", c.name, err)
	}
	return nil
}

func (c *Cgroup) setFrozen(ctx context.Context, frozen bool) error {
	d := c.resDir[resFreezer]
	switch {
	case c.gone.Load():
		return ErrDestroyed
	case d == "":
		return fmt.Errorf("no freezer: %w", ErrUnsupported)
	case c.isV2(resFreezer):
		return setFrozenV2(ctx, d, frozen)
	default:
		return setFrozenV1(ctx, d, frozen)
	}
}

// setFrozenV2 writes cgroup.freeze and waits for "frozen" in cgroup.events.
func setFrozenV2(ctx context.Context, d string, frozen bool) error {
	want := int64(0)
	if frozen {
		want = 1
	}
	if err := writeFile(d, "cgroup.freeze", strconv.FormatInt(want, 10)); err != nil {
		return err
	}
	return poll(ctx, "wait for cgroup.events", func() (bool, error) {
		n, err := readKey(d, "cgroup.events", "frozen")
		return n == want, err
	})
}

// setFrozenV1 writes freezer.state and waits until it reads back the same.
// While the state is FREEZING, FROZEN is written again: that retries tasks
// that could not be frozen on the first pass.
func setFrozenV1(ctx context.Context, d string, frozen bool) error {
	want := "THAWED"
	if frozen {
		want = "FROZEN"
	}
	if err := writeFile(d, "freezer.state", want); err != nil {
		return err
	}
	return poll(ctx, "wait for freezer.state "+want, func() (bool, error) {
		s, err := readFile(d, "freezer.state")
		if err != nil || s == want {
			return err == nil, err
		}
		return false, writeFile(d, "freezer.state", want)
	})
}
