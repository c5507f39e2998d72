package process

import (
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// landlockConfig is the newest ABI go-landlock knows, downgraded to what the
// kernel supports. Network rights: with network off or on, the network
// namespace (or its absence) decides, and loopback inside stays usable; in
// allowlist mode TCP connect is handled, and only the egress proxy's port
// is allowed, a second wall behind the namespace.
func landlockConfig(c *initConfig) (landlock.Config, []landlock.Rule) {
	cfg := landlock.V11.BestEffort()
	cfg.HandledAccessNet = 0
	if c.ProxyPort == 0 {
		return cfg, nil
	}
	cfg.HandledAccessNet = llsys.AccessNetConnectTCP
	return cfg, []landlock.Rule{landlock.ConnectTCP(uint16(c.ProxyPort))}
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
	cfg, rules := landlockConfig(c)
	if !c.Landlock {
		cfg.HandledAccessFS = 0
		if err := cfg.Restrict(rules...); err != nil {
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
	rules = append(rules,
		landlock.RODirs(ro...),
		landlock.PathAccess(llsys.AccessFSReadDir, "/"),
		landlock.PathAccess(llsys.AccessFSReadFile|llsys.AccessFSReadDir|llsys.AccessFSWriteFile, "/proc"),
		landlock.RWFiles(devFiles()...).WithIoctlDev(),
		landlock.RWDirs("/tmp", "/work", "/dev/shm"),
	)
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
