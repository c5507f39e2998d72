package gate

import (
	"bytes"
)

// words returns case-insensitive anchors that must be whole words.
func words(ws ...string) []Anchor {
	out := make([]Anchor, len(ws))
	for i, w := range ws {
		out[i] = Anchor{Keyword: w, WordStart: isWordByte(w[0]), WordEnd: isWordByte(w[len(w)-1])}
	}
	return out
}

// codeReach bounds how far a code rule looks from its keyword.
const codeReach = 512

// command is a code rule that starts at its keyword: expr (which begins
// with the keyword) must match right at the hit, within the line and
// before the next occurrence of one of the rule's keywords. The windows of
// successive hits are therefore disjoint and a line full of keywords costs
// one pass; a command repeated on a line is still found from its last
// occurrence, whose window holds the rest of the line.
func command(anchors []Anchor, expr string) pattern {
	return pattern{anchors: anchors, re: lazyRegexp(`^(?:` + expr + `)`), after: codeReach,
		line: true, anchored: true, untilNext: true}
}

// writeTo is a code rule for a write (>, >>, tee [-a]) to a path matched by
// pathExpr; the anchor is inside the path. The path is read back from the
// anchor (at most pathReach bytes), so a hit costs a bounded amount.
func writeTo(anchors []Anchor, pathExpr string) pattern {
	re := lazyRegexp(`^(?:` + pathExpr + `)`)
	return pattern{anchors: anchors, before: pathReach + 8, after: pathReach,
		match: func(buf []byte, h Hit) (int, int) {
			p := pathStart(buf, h.Start)
			op := writeOpBefore(buf, p)
			if p < 0 || op < 0 {
				return 0, 0
			}
			_, hi := lineBounds(buf, p, h.Start, h.End, min(len(buf), h.End+pathReach))
			if m := re().FindIndex(buf[p:hi]); m != nil && p+m[1] >= h.End {
				return op, p + m[1]
			}
			return 0, 0
		}}
}

// pathReach is the longest path that writeTo reads back from its anchor.
const pathReach = 128

// pathStart returns where the path containing buf[i] starts, or -1 when it
// is longer than pathReach.
func pathStart(buf []byte, i int) int {
	p := i
	for p > 0 && !isPathEnd(buf[p-1]) {
		if i-p >= pathReach {
			return -1
		}
		p--
	}
	return p
}

func isPathEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ';', '|', '&', '<', '>', '"', '\'', '(', ')':
		return true
	}
	return false
}

// writeOpBefore returns the start of the write operator (>, >>, tee,
// tee -a) before the path at p, with blanks and one quote between, or -1.
func writeOpBefore(buf []byte, p int) int {
	if p < 0 {
		return -1
	}
	j := p
	if j > 0 && (buf[j-1] == '"' || buf[j-1] == '\'') {
		j--
	}
	for j > 0 && (buf[j-1] == ' ' || buf[j-1] == '\t') {
		j--
	}
	switch {
	case j > 0 && buf[j-1] == '>':
		if j > 1 && buf[j-2] == '>' {
			return j - 2
		}
		return j - 1
	case wordBefore(buf, j, "tee"):
		return j - 3
	case j >= 2 && string(buf[j-2:j]) == "-a":
		k := j - 2
		for k > 0 && (buf[k-1] == ' ' || buf[k-1] == '\t') {
			k--
		}
		if k < j-2 && wordBefore(buf, k, "tee") {
			return k - 3
		}
	}
	return -1
}

// wordBefore reports whether the word w ends at buf[j].
func wordBefore(buf []byte, j int, w string) bool {
	s := j - len(w)
	return s >= 0 && string(buf[s:j]) == w && (s == 0 || !isWordByte(buf[s-1]))
}

// Shell fragments for the code family. Commands are matched as whole words:
// "amount" does not contain the command mount, nor "discount" the command nc.
const (
	shellCmd  = `(?:sudo\s+)?(?:/usr)?(?:/bin/)?(?:ba|z|k|da|a)?sh\b`
	homePrefx = `(?:~|\$\{?HOME\}?|/root|/home/[\w.-]+)/`
	cronPath  = `(?:/etc/cron(?:tab|\.d|\.hourly|\.daily|\.weekly|\.monthly)?|/var/spool/cron)`
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
			command(words("curl", "wget", "fetch"), `(?i)(?:curl|wget|fetch)\b[^\n|;&]*\|\s*`+shellCmd),
			pattern{anchors: words("curl", "wget"), match: matchSubstitutedDownload, before: 40},
			command(words("iwr", "irm", "invoke-webrequest", "invoke-restmethod"),
				`(?i)(?:iwr|irm|invoke-webrequest|invoke-restmethod)\b[^\n|]*\|\s*(?:iex|invoke-expression)\b`),
			pattern{anchors: words("downloadstring"), match: matchIEXDownload, before: 48}),
		rule("reverse-shell", high, "reverse shell (/dev/tcp, nc -e, socat exec, socket+dup2 one-liners)",
			command(ci("/dev/tcp/", "/dev/udp/"), `/dev/(?:tcp|udp)/[\w.:-]+/[0-9]{1,5}`),
			command(words("nc", "ncat", "netcat"), `(?i)(?:nc|ncat|netcat)\b[^\n|;&]*\s-(?:[a-z]*[ec]\b|-exec\b|-sh-exec\b)`),
			command(words("mkfifo", "mknod"), `(?i)(?:mkfifo|mknod)\b[^\n]*\|\s*(?:nc|ncat|netcat|telnet|openssl\s+s_client)\b`),
			command(words("socat"), `(?i)socat\b[^\n]*\b(?:exec|system):`),
			pattern{anchors: words("dup2"), match: matchSocketDup2, before: codeReach, after: codeReach},
			command(words("fsockopen"), `(?is)fsockopen\b.*(?:/bin/(?:ba)?sh|\bexec\b|\bsystem\b|\bproc_open\b)`)),
		rule("base64-pipe-shell", high, "decoded payload piped to a shell (base64 -d | sh)",
			command(words("base64"), `(?i)base64\s+(?:-[a-z]*d[a-z]*\b|--decode\b)[^\n|]*\|\s*`+shellCmd)),
		rule("ssh-authorized-keys", high, "key appended to ~/.ssh/authorized_keys",
			writeTo(ci("authorized_keys"), `[^\s;|&]*\.ssh/authorized_keys2?\b`)),
		rule("sensitive-file-exfil", high, "credential file uploaded with curl/wget",
			command(words("curl", "wget"),
				`(?i)(?:curl|wget)\b[^\n|;]*(?:--data(?:-binary|-raw|-urlencode)?|-d|-F|--form|-T|--upload-file|--post-file)[=\s]+["']?[\w-]*=?@?[^\s"']*(?:/etc/shadow|/etc/passwd|\.ssh/|\.aws/credentials|\.kube/config|\.docker/config\.json|\.netrc|\bid_(?:rsa|dsa|ecdsa|ed25519)\b)`)),
		rule("shell-rc-write", med, "write to a shell startup file (~/.bashrc, ~/.profile, ~/.zshrc …)",
			writeTo(ci(".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zprofile", ".zshenv", ".zlogin", ".kshrc", ".cshrc", ".tcshrc", "/etc/profile"),
				`(?:`+homePrefx+`\.(?:bashrc|bash_profile|bash_login|profile|zshrc|zprofile|zshenv|zlogin|kshrc|cshrc|tcshrc)|/etc/profile(?:\.d/[\w.-]+)?|/etc/bash\.bashrc)\b`)),
		rule("crontab-edit", med, "cron persistence (crontab -, crontab -e, writes to /etc/cron*, /var/spool/cron)",
			command(words("crontab"), `(?i)crontab\b(?:\s+-u\s+\S+)?\s+(?:-e\b|-r\b|-(?:\s|$)|[^\s-]*[/.][^\s.]\S*)`),
			writeTo(ci("/etc/cron", "/var/spool/cron"), `(?i)`+cronPath),
			pattern{anchors: ci("/etc/cron", "/var/spool/cron"), match: matchCronCopy, before: codeReach, after: pathReach}),
		rule("systemd-unit-write", med, "write of a systemd unit (service persistence)",
			writeTo(ci("/systemd/"),
				`(?:/etc/systemd/system/|/usr/lib/systemd/system/|`+homePrefx+`\.config/systemd/user/)[\w@.-]+\.(?:service|timer)\b`)),
		rule("ld-preload-write", med, "write to /etc/ld.so.preload (library injection)",
			writeTo(ci("/etc/ld.so.preload"), `/etc/ld\.so\.preload\b`)),
	}
}

var (
	reSubstituted = lazyRegexp(`(?:\b(?:ba|z)?sh\s+(?:-c\s+)?["']?|\beval\s+["']?|\bsource\s+|\.\s+)(?:<\(|\$\()\s*$`)
	reIEX         = lazyRegexp(`(?i)\biex\b[^\n]{0,40}$`)
)

// matchSubstitutedDownload reports bash <(curl …), sh -c "$(curl …)",
// eval "$(wget …)" and source <(curl …): the download's output is run.
func matchSubstitutedDownload(buf []byte, h Hit) (int, int) {
	j := h.Start
	for j > 0 && h.Start-j < 4 && (buf[j-1] == ' ' || buf[j-1] == '\t') {
		j--
	}
	if j < 2 || !(buf[j-1] == '(' && (buf[j-2] == '$' || buf[j-2] == '<')) {
		return 0, 0
	}
	lo, _ := lineBounds(buf, max(0, h.Start-32), h.Start, h.End, h.End)
	if m := reSubstituted().FindIndex(buf[lo:h.Start]); m != nil {
		return lo + m[0], h.End
	}
	return 0, 0
}

// matchIEXDownload reports iex … DownloadString (PowerShell download and
// run).
func matchIEXDownload(buf []byte, h Hit) (int, int) {
	lo, _ := lineBounds(buf, max(0, h.Start-44), h.Start, h.End, h.End)
	if m := reIEX().FindIndex(buf[lo:h.Start]); m != nil {
		return lo + m[0], h.End
	}
	return 0, 0
}

var reDup2Tail = lazyRegexp(`(?i)^dup2\b.*?(?:\bsubprocess\b|\bpty\.spawn\b|/bin/(?:ba)?sh|\bexec)`)

// matchSocketDup2 reports the python/perl reverse shell socket … dup2 …
// subprocess|pty.spawn|/bin/sh|exec on one line. The tail is searched up
// to the next dup2, which is checked on its own.
func matchSocketDup2(buf []byte, h Hit) (int, int) {
	lo, hi := lineBounds(buf, max(0, h.Start-codeReach), h.Start, h.End, min(len(buf), h.End+codeReach))
	s := bytes.Index(buf[lo:h.Start], []byte("socket"))
	if s < 0 {
		return 0, 0
	}
	if next := bytes.Index(buf[h.End:hi], []byte("dup2")); next >= 0 {
		hi = h.End + next + 4
	}
	if m := reDup2Tail().FindIndex(buf[h.Start:hi]); m != nil {
		return lo + s, h.Start + m[1]
	}
	return 0, 0
}

// cpCommands are the commands whose last argument is a destination.
var cpCommands = []string{"cp", "mv", "install", "ln"}

// matchCronCopy reports cp/mv/install/ln … /etc/cron.d/x: a file copied
// into a cron directory (the path is the last argument of the command).
func matchCronCopy(buf []byte, h Hit) (int, int) {
	if h.Start == 0 || buf[h.Start-1] != ' ' && buf[h.Start-1] != '\t' {
		return 0, 0
	}
	end := h.End
	for end < len(buf) && end-h.End < pathReach && !isPathEnd(buf[end]) {
		end++
	}
	k := end
	for k < len(buf) && (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\r') {
		k++
	}
	if k < len(buf) && buf[k] != '\n' && buf[k] != ';' && buf[k] != '|' && buf[k] != '&' {
		return 0, 0
	}
	seg := h.Start
	for seg > 0 && h.Start-seg < codeReach && !bytes.ContainsRune([]byte("\n;|&"), rune(buf[seg-1])) {
		seg--
	}
	for i := seg; i < h.Start; i++ {
		for _, w := range cpCommands {
			if (i == 0 || !isWordByte(buf[i-1])) && bytes.HasPrefix(buf[i:h.Start], []byte(w+" ")) {
				return i, end
			}
		}
	}
	return 0, 0
}
