package backend

import (
	"os"
	"os/exec"
	"strings"
)

// hostBlocker says what on this host would stop a hardware-isolated backend
// even once it is implemented, or "" when nothing obvious does. It only
// reads files; it never starts anything.
func hostBlocker(n Name) string {
	switch n {
	case Firecracker:
		if _, err := exec.LookPath("firecracker"); err != nil {
			return "firecracker: not found in PATH; " + kvmProblem()
		}
		return kvmProblem()
	case SGX:
		if !cpuFlag("sgx") {
			return "no Intel SGX: the CPU does not report the sgx flag"
		}
		if _, err := os.Stat("/dev/sgx_enclave"); err != nil {
			return "/dev/sgx_enclave: not present"
		}
	case SEV:
		if !cpuFlag("sev_snp") {
			return "no AMD SEV-SNP: the CPU does not report the sev_snp flag"
		}
		if _, err := os.Stat("/dev/sev"); err != nil {
			return "/dev/sev: not present"
		}
	}
	return ""
}

// kvmProblem explains why KVM cannot run ordinary guests here, or "".
func kvmProblem() string {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return "/dev/kvm: not present"
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return "/dev/kvm: no hardware virtualization (the kvm_pvm module emulates it; stock guest kernels do not boot)"
	}
	if !cpuFlag("vmx") && !cpuFlag("svm") {
		return "/dev/kvm: no hardware virtualization (no vmx or svm CPU flag)"
	}
	return ""
}

func cpuFlag(flag string) bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			for _, f := range strings.Fields(v) {
				if f == flag {
					return true
				}
			}
			return false
		}
	}
	return false
}
