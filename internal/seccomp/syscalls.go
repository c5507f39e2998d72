//go:build linux

package seccomp

// Syscall numbers are resolved per architecture (arch.go). A name that does
// not exist on the target architecture (iopl on arm64, for example) cannot be
// called there, so built-in profiles skip it; tests check that every name
// below exists on x86_64.

// basicDenyNames fail with EPERM in every profile that filters: they attack
// the kernel or the host (tracing, mounts, modules, clocks, keyrings, eBPF,
// io_uring, namespace changes), and an agent's code has no use for them.
var basicDenyNames = []string{
	// Tracing and reading other processes' memory.
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
	"process_madvise", "kcmp",
	// Mounts and root changes.
	"mount", "umount2", "move_mount", "open_tree", "open_tree_attr",
	"fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
	"pivot_root", "chroot",
	// Whole-machine state.
	"reboot", "kexec_load", "kexec_file_load", "swapon", "swapoff", "acct",
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"sethostname", "setdomainname", "syslog", "vhangup", "quotactl",
	"quotactl_fd", "nfsservctl", "lookup_dcookie", "fanotify_init",
	// Kernel modules, including the obsolete interfaces.
	"init_module", "finit_module", "delete_module", "create_module",
	"get_kernel_syms", "query_module",
	// Keyrings, eBPF, perf, userfaultfd, io_uring.
	"keyctl", "add_key", "request_key", "bpf", "perf_event_open",
	"userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
	// Namespaces: creating or joining them (clone is filtered on flags).
	"unshare", "setns",
	// POSIX message queues: their quota is per user, and every sandbox runs
	// as the same user, so one sandbox's queues would deny them to the rest.
	"mq_open",
	// File handles bypass path-based checks.
	"name_to_handle_at", "open_by_handle_at",
	// Legacy and hardware interfaces.
	"iopl", "ioperm", "modify_ldt", "uselib", "ustat", "sysfs", "_sysctl",
}

// strictAllowNames are allowed without conditions by the strict profile.
// socket, ioctl, clone and personality are allowed only with the argument
// conditions in profiles.go; clone3 always fails with ENOSYS.
var strictAllowNames = []string{
	// File descriptors and I/O.
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv",
	"pwritev", "preadv2", "pwritev2", "lseek", "close", "close_range",
	"dup", "dup2", "dup3", "fcntl", "flock", "pipe", "pipe2", "sendfile",
	"splice", "tee", "copy_file_range", "fsync", "fdatasync", "sync",
	"syncfs", "sync_file_range", "fallocate", "fadvise64", "readahead",
	"ftruncate", "truncate",
	// Paths and metadata.
	"stat", "fstat", "lstat",
	"newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat",
	"faccessat2", "readlink", "readlinkat", "getdents", "getdents64",
	"getcwd", "chdir", "fchdir", "rename", "renameat", "renameat2", "mkdir",
	"mkdirat", "rmdir", "unlink", "unlinkat", "link", "linkat", "symlink",
	"symlinkat", "chown",
	"fchown", "lchown", "fchownat", "umask", "utime", "utimes", "utimensat",
	"futimesat", "getxattr", "lgetxattr", "fgetxattr",
	"getxattrat", "listxattr", "llistxattr", "flistxattr", "listxattrat",
	"setxattr", "lsetxattr", "fsetxattr", "setxattrat", "removexattr",
	"lremovexattr", "fremovexattr", "removexattrat", "inotify_init",
	"inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	// Polling and event descriptors.
	"select", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1",
	"epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd",
	"eventfd2", "signalfd", "signalfd4", "timerfd_create", "timerfd_settime",
	"timerfd_gettime",
	// Memory.
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync",
	"mincore", "mlock", "mlock2", "munlock", "mlockall", "munlockall",
	"membarrier", "memfd_create", "pkey_alloc", "pkey_free", "pkey_mprotect",
	"mseal", "map_shadow_stack",
	// Processes, threads and their identity.
	"fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4",
	"waitid", "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid",
	"getegid", "getresuid", "getresgid", "getgroups", "setuid", "setgid",
	"setreuid", "setregid", "setresuid", "setresgid", "setgroups",
	"setfsuid", "setfsgid", "getpgid", "setpgid", "getpgrp", "getsid",
	"setsid", "prctl", "arch_prctl", "set_tid_address", "set_robust_list",
	"get_robust_list", "rseq", "futex", "futex_waitv", "futex_wake",
	"futex_wait", "futex_requeue", "capget", "capset", "pidfd_open",
	"pidfd_send_signal",
	// Scheduling.
	"sched_yield", "sched_getaffinity", "sched_setaffinity",
	"sched_getparam", "sched_getscheduler", "sched_getattr",
	"sched_get_priority_max", "sched_get_priority_min",
	"sched_rr_get_interval", "getpriority", "setpriority", "ioprio_get",
	"ioprio_set", "getcpu",
	// Signals and timers.
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending",
	"rt_sigtimedwait", "rt_sigsuspend", "rt_sigqueueinfo",
	"rt_tgsigqueueinfo", "sigaltstack", "kill", "tkill", "tgkill", "pause",
	"alarm", "getitimer", "setitimer", "timer_create", "timer_settime",
	"timer_gettime", "timer_getoverrun", "timer_delete", "restart_syscall",
	"nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres",
	"gettimeofday", "time", "times",
	// Limits and system information.
	"getrusage", "getrlimit", "setrlimit", "uname", "sysinfo", // prlimit64 is conditional
	"getrandom",
	// Sockets (socket itself is conditional; the netns cuts the network).
	"socketpair", "bind", "connect", "listen", "accept", "accept4",
	"getsockname", "getpeername", "sendto", "recvfrom", "sendmsg",
	"recvmsg", "sendmmsg", "recvmmsg", "shutdown", "setsockopt",
	"getsockopt",
	// System V and POSIX IPC (private to the sandbox's IPC namespace).
	"shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop",
	"semctl", "msgget", "msgsnd", "msgrcv", "msgctl",
	"mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify",
	"mq_getsetattr",
}
