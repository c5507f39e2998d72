package process

import "github.com/kavach-sandbox/kavach/backend"

// initConfig is what the parent sends to the sandbox init over fd 3, as
// JSON. It holds no secrets: secret values travel through their own pipes.
type initConfig struct {
	Cwd      string `json:"cwd"` // initial directory; each exec names its own
	Hostname string `json:"hostname"`

	// Root is the host directory that becomes the new root (a tmpfs is
	// mounted on it inside the sandbox's mount namespace).
	Root         string      `json:"root"`
	WorkDir      string      `json:"work_dir"` // host directory bound at /work
	ReadOnlyRoot bool        `json:"read_only_root"`
	Mounts       []bindMount `json:"mounts,omitempty"`
	TmpSize      int64       `json:"tmp_size"`
	ResolvConf   bool        `json:"resolv_conf"`          // copy the host's resolv.conf (network on)
	CABundle     string      `json:"ca_bundle,omitempty"`  // host file bound over the trust store
	ProxyPort    int         `json:"proxy_port,omitempty"` // listen here for the egress proxy

	UID      int  `json:"uid"`
	GID      int  `json:"gid"`
	Rootless bool `json:"rootless"` // in a user namespace kavach made without privilege

	Landlock bool   `json:"landlock"` // filesystem rules (read-only root)
	Seccomp  []byte `json:"seccomp,omitempty"`

	Rlimits rlimits `json:"rlimits"`

	// CgroupFiles is how many of the descriptors sent with the configuration
	// are cgroup join files (they come first; user namespaces follow).
	CgroupFiles int `json:"cgroup_files"`

	usernsFDs []int // received with the configuration, for idmapped mounts
	proxyFD   int   // the egress listener, sent to the parent when ready
}

type bindMount struct {
	Source string `json:"source"`
	Dest   string `json:"dest"`
	RW     bool   `json:"rw"`
	// IDMap indexes the user namespace fds sent with the configuration
	// (idmapped mount, see idmap.go); -1 for a plain bind.
	IDMap int `json:"idmap"`
}

type rlimits struct {
	CPUSeconds uint64 `json:"cpu_seconds,omitempty"`
	FileSize   uint64 `json:"file_size,omitempty"`
	NoFile     uint64 `json:"nofile,omitempty"`
}

// initReport is the init's answer to its configuration: stage "ready" once
// every layer is in force, or the stage that failed.
type initReport struct {
	Stage       string `json:"stage"`
	Error       string `json:"error,omitempty"`
	Errno       int    `json:"errno,omitempty"`
	LandlockABI int    `json:"landlock_abi,omitempty"`
	Seccomp     bool   `json:"seccomp,omitempty"`
}

// fdSocket is the init's end of its socket to the parent.
const fdSocket = 3

// The unprivileged identity the payload runs as (see backend.SandboxUID).
const (
	sandboxUID = backend.SandboxUID
	sandboxGID = backend.SandboxGID
)
