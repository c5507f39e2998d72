package gate

import (
	"bytes"
	"regexp"
)

// words returns case-insensitive anchors that must be whole words.
func words(ws ...string) []Anchor {
	out := make([]Anchor, len(ws))
	for i, w := range ws {
		out[i] = Anchor{Keyword: w, WordStart: isWordByte(w[0]), WordEnd: isWordByte(w[len(w)-1])}
	}
	return out
}

// codeLine builds a pattern whose regular expression is applied to the
// line around the anchor (at most 512 bytes on each side).
func codeLine(anchors []Anchor, expr string) pattern {
	return pattern{anchors: anchors, re: regexp.MustCompile(expr), before: 512, after: 512, line: true}
}

// needing adds a guard to p: its line must contain one of the needles, a
// test far cheaper than the regular expression it protects.
func needing(p pattern, needles ...string) pattern {
	p.guard = func(buf []byte, h Hit) bool {
		lo, hi := lineBounds(buf, max(0, h.Start-p.before), h.Start, h.End, min(len(buf), h.End+p.after))
		for _, n := range needles {
			if bytes.Contains(buf[lo:hi], []byte(n)) {
				return true
			}
		}
		return false
	}
	return p
}

// Shell fragments for the code family. Commands are matched as whole words:
// "amount" does not contain the command mount, nor "discount" the command nc.
const (
	shellCmd  = `(?:sudo\s+)?(?:/usr)?(?:/bin/)?(?:ba|z|k|da|a)?sh\b`
	writeOp   = `(?:>>?|\btee\b(?:\s+-a)?)\s*["']?`
	homePrefx = `(?:~|\$\{?HOME\}?|/root|/home/[\w.-]+)/`
)

// codeRules is the exfiltration and persistence family. Severities: high for
// remote code execution and remote access (download piped to a shell,
// reverse shells, decoded payloads piped to a shell, SSH key implants,
// uploads of credential files); medium for persistence writes (shell rc
// files, cron, systemd units, ld.so.preload).
func codeRules() []ruleDef {
	high, med := SeverityHigh, SeverityMedium
	return []ruleDef{
		rule("pipe-to-shell", high, "downloaded content executed by a shell (curl/wget … | sh)",
			needing(codeLine(words("curl", "wget", "fetch"),
				`(?i)\b(?:curl|wget|fetch)\b[^\n|;&]*\|\s*`+shellCmd), "|"),
			needing(codeLine(words("curl", "wget"),
				`(?i)(?:\b(?:ba|z)?sh\s+(?:-c\s+)?["']?|\beval\s+["']?|\bsource\s+|\.\s+)(?:<\(|\$\()\s*(?:curl|wget)\b`), "$(", "<("),
			codeLine(words("iwr", "irm", "invoke-webrequest", "invoke-restmethod", "downloadstring"),
				`(?i)(?:\b(?:iwr|irm|invoke-webrequest|invoke-restmethod)\b[^\n|]*\|\s*(?:iex|invoke-expression)\b|\biex\b[^\n]{0,40}downloadstring\b)`)),
		rule("reverse-shell", high, "reverse shell (/dev/tcp, nc -e, socat exec, socket+dup2 one-liners)",
			codeLine(ci("/dev/tcp/", "/dev/udp/"),
				`/dev/(?:tcp|udp)/[\w.:-]+/[0-9]{1,5}`),
			codeLine(words("nc", "ncat", "netcat"),
				`(?i)\b(?:nc|ncat|netcat)\b[^\n|;&]*\s-(?:[a-z]*[ec]\b|-exec\b|-sh-exec\b)`),
			codeLine(words("mkfifo", "mknod"),
				`(?i)\b(?:mkfifo|mknod)\b[^\n]*\|\s*(?:nc|ncat|netcat|telnet|openssl\s+s_client)\b`),
			codeLine(words("socat"),
				`(?i)\bsocat\b[^\n]*\b(?:exec|system):`),
			codeLine(words("dup2", "fsockopen", "pty.spawn"),
				`(?is)(?:\bsocket\b.*\bdup2\b.*(?:\bsubprocess\b|\bpty\.spawn\b|/bin/(?:ba)?sh|\bexec)|\bfsockopen\b.*(?:/bin/(?:ba)?sh|\bexec\b|\bsystem\b|\bproc_open\b))`)),
		rule("base64-pipe-shell", high, "decoded payload piped to a shell (base64 -d | sh)",
			codeLine(words("base64", "b64decode"),
				`(?i)\bbase64\s+(?:-[a-z]*d[a-z]*\b|--decode\b)[^\n|]*\|\s*`+shellCmd)),
		rule("ssh-authorized-keys", high, "key appended to ~/.ssh/authorized_keys",
			codeLine(ci("authorized_keys"),
				writeOp+`[^\s;|&]*\.ssh/authorized_keys2?\b`)),
		rule("sensitive-file-exfil", high, "credential file uploaded with curl/wget",
			needing(codeLine(words("curl", "wget"),
				`(?i)\b(?:curl|wget)\b[^\n|;]*(?:--data(?:-binary|-raw|-urlencode)?|-d|-F|--form|-T|--upload-file|--post-file)[=\s]+["']?[\w-]*=?@?[^\s"']*(?:/etc/shadow|/etc/passwd|\.ssh/|\.aws/credentials|\.kube/config|\.docker/config\.json|\.netrc|\bid_(?:rsa|dsa|ecdsa|ed25519)\b)`),
				"/etc/", ".ssh/", ".aws/", ".kube/", ".docker/", ".netrc", "id_")),
		rule("shell-rc-write", med, "write to a shell startup file (~/.bashrc, ~/.profile, ~/.zshrc …)",
			codeLine(ci(".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zprofile", ".zshenv", ".zlogin", ".kshrc", ".cshrc", ".tcshrc", "/etc/profile"),
				writeOp+`(?:`+homePrefx+`\.(?:bashrc|bash_profile|bash_login|profile|zshrc|zprofile|zshenv|zlogin|kshrc|cshrc|tcshrc)|/etc/profile(?:\.d/[\w.-]+)?|/etc/bash\.bashrc)\b`)),
		rule("crontab-edit", med, "cron persistence (crontab -, crontab -e, writes to /etc/cron*, /var/spool/cron)",
			codeLine(words("crontab"),
				`(?i)\bcrontab\b(?:\s+-u\s+\S+)?\s+(?:-e\b|-r\b|-(?:\s|$)|[^\s-]*[/.][^\s.]\S*)`),
			codeLine(ci("/etc/cron", "/var/spool/cron"),
				`(?i)(?:`+writeOp+`(?:/etc/cron(?:tab|\.d|\.hourly|\.daily|\.weekly|\.monthly)?|/var/spool/cron)|\b(?:cp|mv|install|ln)\b[^\n;|&]*\s(?:/etc/cron(?:tab|\.d|\.hourly|\.daily|\.weekly|\.monthly)?|/var/spool/cron)[^\s;|&]*\s*(?:$|[;|&]))`)),
		rule("systemd-unit-write", med, "write of a systemd unit (service persistence)",
			codeLine(ci("/systemd/"),
				writeOp+`(?:/etc/systemd/system/|/usr/lib/systemd/system/|`+homePrefx+`\.config/systemd/user/)[\w@.-]+\.(?:service|timer)\b`)),
		rule("ld-preload-write", med, "write to /etc/ld.so.preload (library injection)",
			codeLine(ci("/etc/ld.so.preload"), writeOp+`/etc/ld\.so\.preload\b`)),
	}
}
