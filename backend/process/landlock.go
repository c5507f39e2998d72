package process

import (
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// landlockConfig is the newest ABI go-landlock knows, downgraded to what the
// kernel supports. Network rights are not handled: the network namespace
// cuts the network, and allowlist mode reaches only the egress bridge.
func landlockConfig() landlock.Config {
	cfg := landlock.V11.BestEffort()
	cfg.HandledAccessNet = 0
	return cfg
}

// applyLandlock confines file system access for a read-only root: read and
// execute on the system directories, read-write only on /tmp, /work, /dev
// nodes and rw mounts. It also scopes abstract unix sockets and signals to
// the sandbox. The ABI in force is recorded in the report.
func applyLandlock(c *initConfig, rep *initReport) error {
	abi, err := llsys.LandlockGetABIVersion()
	if err != nil || abi <= 0 {
		return nil // no Landlock: the parent sees LandlockABI 0 and lowers the score
	}
	cfg := landlockConfig()
	if !c.Landlock {
		if err := cfg.RestrictScoped(); err != nil {
			return err
		}
		rep.LandlockABI = abi
		return nil
	}
	ro := []string{"/usr", "/etc"}
	for _, d := range systemDirs {
		if st, err := os.Lstat(d); err == nil && st.IsDir() {
			ro = append(ro, d)
		}
	}
	rules := []landlock.Rule{
		landlock.RODirs(ro...),
		landlock.PathAccess(llsys.AccessFSReadDir, "/"),
		landlock.PathAccess(llsys.AccessFSReadFile|llsys.AccessFSReadDir|llsys.AccessFSWriteFile, "/proc"),
		landlock.RWFiles(devFiles()...).WithIoctlDev(),
		landlock.RWDirs("/tmp", "/work", "/dev/shm"),
	}
	for _, m := range c.Mounts {
		rules = append(rules, pathRule(m.Dest, m.RW))
	}
	if err := cfg.Restrict(rules...); err != nil {
		return err
	}
	rep.LandlockABI = abi
	return nil
}

func devFiles() []string {
	out := make([]string, len(devNodes))
	for i, n := range devNodes {
		out[i] = "/dev/" + n
	}
	return out
}

func pathRule(p string, rw bool) landlock.Rule {
	st, err := os.Stat(p)
	isDir := err == nil && st.IsDir()
	switch {
	case isDir && rw:
		return landlock.RWDirs(p)
	case isDir:
		return landlock.RODirs(p)
	case rw:
		return landlock.RWFiles(p)
	}
	return landlock.ROFiles(p)
}
