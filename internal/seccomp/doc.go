// Package seccomp builds kavach's seccomp-bpf profiles.
//
// Every profile is defined once, as an ordered list of rules over syscall
// names (see profiles.go), and rendered two ways from that one definition:
// a classic-BPF program that the process backend installs as the last step
// of its sandbox init (Compile, Program.Load), and the OCI runtime-spec
// form that the runc, crun and runsc backends put in a bundle (OCI).
//
// The profiles are:
//
//   - off: no filter;
//   - basic: default allow, with a deny-list of dangerous syscalls that
//     fail with EPERM (clone3 fails with ENOSYS so libc falls back to clone);
//   - strict: default deny (EPERM), with an allow-list that runs shells,
//     coreutils, python3, perl and Go binaries;
//   - custom: an allow-list of syscall names given by the caller, with the
//     basic deny set and clone3 → ENOSYS still applied.
//
// Every filter first checks the audit architecture and kills the process on
// any foreign ABI (for example 32-bit int 0x80 entry on x86_64) and on x32
// syscall numbers, so a deny-list cannot be bypassed through another ABI.
//
// The package targets Linux on x86_64; arm64 filters are assembled too.
// Other architectures get ErrUnsupportedArch.
package seccomp
