package gate

import (
	"bytes"
)

// assign is the assignment operator of contextual rules: an optional
// closing quote, then =, :=, : or => with blanks around and an optional
// opening quote.
const assign = `["']?\s{0,4}(?:=|:=|:|=>)\s{0,4}["']?`

// cs returns case-sensitive anchors that must start a word.
func cs(words ...string) []Anchor {
	out := make([]Anchor, len(words))
	for i, w := range words {
		out[i] = Anchor{Keyword: w, CaseSensitive: true, WordStart: isWordByte(w[0])}
	}
	return out
}

// exact returns case-sensitive anchors with no boundary requirement.
func exact(words ...string) []Anchor {
	out := make([]Anchor, len(words))
	for i, w := range words {
		out[i] = Anchor{Keyword: w, CaseSensitive: true}
	}
	return out
}

// ci returns case-insensitive anchors with no boundary requirement.
func ci(words ...string) []Anchor {
	out := make([]Anchor, len(words))
	for i, w := range words {
		out[i] = Anchor{Keyword: w}
	}
	return out
}

// anchoredAt is a rule whose regular expression must match right at the
// anchor's start (or its end, with fromEnd); group 1 is the secret. guard,
// if set, checks the bytes before the anchor.
func anchoredAt(anchors []Anchor, expr string, after int, fromEnd bool, guard func([]byte, Hit) bool) pattern {
	return pattern{anchors: anchors, re: lazyRegexp(`^(?:` + expr + `)`), group: 1,
		after: after, anchored: true, fromEnd: fromEnd, guard: guard}
}

func rule(id string, sev Severity, desc string, pats ...pattern) ruleDef {
	return ruleDef{Rule: Rule{ID: id, Severity: sev, Description: desc}, patterns: pats}
}

// secretRules is the credential family: kavach puts private keys and cloud
// provider credentials at critical, provider tokens at high, and JWTs,
// passwords in URLs and high-entropy assignments at medium.
func secretRules() []ruleDef {
	crit, high, med := SeverityCritical, SeverityHigh, SeverityMedium
	return []ruleDef{
		// Critical: private keys and cloud provider credentials.
		rule("private-key", crit, "PEM/OpenSSH/PGP private key block",
			pattern{anchors: cs("-----BEGIN"), match: matchPrivateKey, after: privateKeyReach}),
		rule("putty-private-key", crit, "PuTTY private key file",
			pattern{anchors: cs("PuTTY-User-Key-File-"), match: matchPuttyKey, after: privateKeyReach}),
		token("age-secret-key", crit, "age encryption secret key", exact("AGE-SECRET-KEY-1"),
			prefixed(run(clsBech32, 58, 58))),
		token("aws-access-key-id", crit, "AWS access key id", exact("AKIA", "ASIA", "ABIA", "ACCA"),
			bounded(clsUpperDigit, run(clsUpperDigit, 16, 16))),
		rule("aws-secret-access-key", crit, "AWS secret access key in an assignment or right after its key id",
			anchoredAt(ci("secret_access_key", "secretaccesskey", "secret-access-key", "aws_secret_key", "aws-secret-key"),
				`(?i)(?:aws[_.-]?)?secret[_.-]?(?:access[_.-]?)?key`+assign+`([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`, 96, false, nil),
			anchoredAt(exact("AKIA", "ASIA"), `(?:AKIA|ASIA)[A-Z0-9]{16}[\s,;:|"'=]{1,8}([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`, 72, false,
				func(buf []byte, h Hit) bool { return h.Start == 0 || !clsUpperDigit[buf[h.Start-1]] })),
		rule("aws-session-token", crit, "AWS session token in an assignment",
			anchoredAt(ci("session_token", "sessiontoken", "session-token"), assign+`([A-Za-z0-9/+=]{100,1000})`, 1040, true, awsSessionKey)),
		rule("gcp-service-account-key", crit, "GCP service-account key JSON (private_key of a service_account)",
			pattern{anchors: cs("service_account"), match: matchGCPServiceAccount, before: gcpReach, after: gcpReach}),
		token("alibaba-access-key-id", crit, "Alibaba Cloud access key id", exact("LTAI"),
			bounded(clsAlnum, run(clsAlnum, 12, 20))),
		rule("azure-storage-key", crit, "Azure storage account key (AccountKey=)",
			anchoredAt(ci("accountkey"), `(?i)AccountKey\s{0,2}[=:]\s{0,2}["']?([A-Za-z0-9+/]{86}==)`, 100, false, nil)),
		rule("azure-shared-access-key", crit, "Azure Service Bus / Event Hubs shared access key",
			anchoredAt(ci("sharedaccesskey"), `(?i)SharedAccessKey\s{0,2}=\s{0,2}([A-Za-z0-9+/]{42,43}=)`, 70, false, nil)),

		// High: VCS, package registries and provider API secrets.
		token("gcp-api-key", high, "Google API key", exact("AIza"),
			tokenSpec{segs: []seg{run(clsWordDash, 35, 35)}, notBefore: clsWordDash}),
		token("google-oauth-client-secret", high, "Google OAuth client secret", exact("GOCSPX-"), prefixed(run(clsWordDash, 28, 28))),
		token("google-oauth-access-token", high, "Google OAuth access token", exact("ya29."), prefixed(run(clsWordDash, 20, 2048))),
		token("github-pat", high, "GitHub personal access token (classic)", exact("ghp_"), prefixed(run(clsAlnum, 36, 36))),
		token("github-oauth-token", high, "GitHub OAuth access token", exact("gho_"), prefixed(run(clsAlnum, 36, 36))),
		token("github-user-token", high, "GitHub user-to-server token", exact("ghu_"), prefixed(run(clsAlnum, 36, 36))),
		token("github-server-token", high, "GitHub server-to-server token", exact("ghs_"), prefixed(run(clsAlnum, 36, 36))),
		token("github-refresh-token", high, "GitHub refresh token", exact("ghr_"), prefixed(run(clsAlnum, 36, 76))),
		token("github-fine-grained-pat", high, "GitHub fine-grained personal access token", exact("github_pat_"),
			prefixed(run(clsAlnum, 22, 22), lit("_"), run(clsAlnum, 59, 59))),
		token("gitlab-pat", high, "GitLab personal access token", exact("glpat-"), prefixed(run(clsWordDash, 20, 64))),
		rule("gitlab-token", high, "GitLab deploy, runner, trigger, feed or OAuth token",
			tokenPattern(exact("gldt-", "glrt-", "glptt-", "glcbt-", "glft-", "gloas-", "glsoat-", "glimt-"), prefixed(run(clsWordDash, 20, 64))),
			tokenPattern(exact("GR1348941"), prefixed(run(clsWordDash, 20, 20)))),
		token("npm-token", high, "npm access token", exact("npm_"), prefixed(run(clsAlnum, 36, 36))),
		token("pypi-token", high, "PyPI upload token", exact("pypi-AgEIcHlwaS5vcmc", "pypi-AgENdGVzdC5weXBpLm9yZw"),
			prefixed(run(clsWordDash, 50, 1000))),
		token("rubygems-api-key", high, "RubyGems API key", exact("rubygems_"), prefixed(run(clsHexLower, 48, 48))),
		token("nuget-api-key", high, "NuGet API key", exact("oy2"), bounded(clsLowerDigit, run(clsLowerDigit, 43, 43))),
		token("docker-hub-pat", high, "Docker Hub personal access token", exact("dckr_pat_"), prefixed(run(clsWordDash, 27, 64))),
		token("stripe-live-key", high, "Stripe live secret key", exact("sk_live_"), prefixed(run(clsAlnum, 24, 99))),
		token("stripe-restricted-key", high, "Stripe live restricted key", exact("rk_live_"), prefixed(run(clsAlnum, 24, 99))),
		token("stripe-webhook-secret", high, "Stripe webhook signing secret", exact("whsec_"), prefixed(run(clsB64, 32, 88))),
		token("slack-bot-token", high, "Slack bot token", exact("xoxb-"),
			prefixed(run(clsDigit, 8, 13), lit("-"), run(clsDigit, 8, 13), lit("-"), run(clsAlnum, 24, 34))),
		token("slack-user-token", high, "Slack user token", exact("xoxp-"),
			prefixed(run(clsDigit, 8, 13), lit("-"), run(clsDigit, 8, 13), lit("-"), run(clsDigit, 8, 13), lit("-"), run(clsAlnum, 32, 32))),
		rule("slack-token", high, "Slack app, configuration, refresh or legacy token",
			tokenPattern(exact("xapp-"), prefixed(run(clsDigit, 1, 1), lit("-"), run(clsUpperDigit, 9, 12), lit("-"),
				run(clsDigit, 10, 13), lit("-"), run(clsHexLower, 64, 64))),
			tokenPattern(exact("xoxa-", "xoxe-", "xoxe.", "xoxr-", "xoxs-"), prefixed(run(clsAlnumDash, 10, 256)))),
		rule("slack-webhook", high, "Slack incoming webhook URL",
			anchoredAt(ci("hooks.slack.com/"), `((?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,200})`, 220, true,
				follows("https://", "http://"))),
		token("twilio-api-key", high, "Twilio API key secret", cs("SK"), wholeWord(run(clsHex, 32, 32))),
		token("sendgrid-api-key", high, "SendGrid API key", exact("SG."),
			prefixed(run(clsWordDash, 22, 22), lit("."), run(clsWordDash, 43, 43))),
		token("mailgun-api-key", high, "Mailgun API key", cs("key-"), wholeWord(run(clsHexLower, 32, 32))),
		rule("mailchimp-api-key", high, "Mailchimp API key",
			pattern{anchors: exact("-us"), match: matchMailchimp, before: 33, after: 3}),
		rule("discord-bot-token", high, "Discord bot token near the word discord",
			pattern{anchors: ci("discord"), match: matchDiscordBot, after: discordReach}),
		rule("discord-webhook", high, "Discord webhook URL",
			anchoredAt(ci("discord.com/api/webhooks/", "discordapp.com/api/webhooks/"), `([0-9]{17,20}/[A-Za-z0-9_-]{60,68})`, 90, true,
				follows("https://", "https://ptb.", "https://canary."))),
		rule("telegram-bot-token", high, "Telegram bot token",
			pattern{anchors: exact(":AA"), match: matchTelegram, before: 11, after: 34}),
		rule("openai-api-key", high, "OpenAI API key",
			pattern{anchors: exact("T3BlbkFJ"), match: matchOpenAILegacy, before: openAIReach, after: openAIReach},
			tokenPattern(cs("sk-proj-", "sk-svcacct-", "sk-admin-"), wordStart(run(clsWordDash, 40, 250)))),
		token("anthropic-api-key", high, "Anthropic API key", exact("sk-ant-"),
			prefixed(lit("api", "admin", "sid"), run(clsDigit, 2, 2), lit("-"), run(clsWordDash, 80, 120))),
		token("huggingface-token", high, "Hugging Face access token", cs("hf_"), wordStart(run(clsLetters, 34, 34))),
		token("digitalocean-token", high, "DigitalOcean token", exact("dop_v1_", "doo_v1_", "dor_v1_"), prefixed(run(clsHexLower, 64, 64))),
		rule("heroku-api-key", high, "Heroku API key",
			tokenPattern(exact("HRKU-"), prefixed(run(clsWordDash, 60, 60))),
			pattern{anchors: ci("heroku"), match: matchHerokuAssignment, after: 90}),
		token("shopify-token", high, "Shopify access token or shared secret", exact("shpat_", "shpca_", "shppa_", "shpss_"),
			prefixed(run(clsHex, 32, 32))),
		rule("square-access-token", high, "Square access token",
			tokenPattern(exact("sq0atp-"), prefixed(run(clsWordDash, 22, 22))),
			tokenPattern(exact("EAAA"), tokenSpec{segs: []seg{run(clsWordDash, 60, 60)}, notBefore: clsWordDash})),
		token("square-oauth-secret", high, "Square OAuth secret", exact("sq0csp-"), prefixed(run(clsWordDash, 43, 43))),
		rule("datadog-api-key", high, "Datadog API or application key in an assignment",
			anchoredAt(ci("datadog", "dd_api_key", "dd_app_key", "dd-api-key", "dd_application_key"),
				`(?i)(?:datadog|dd)[_.-]?(?:api|app|application)?[_.-]?key`+assign+`([a-f0-9]{40}|[a-f0-9]{32})\b`, 120, false, nil)),
		rule("azure-ad-client-secret", high, "Microsoft Entra ID (Azure AD) client secret",
			pattern{anchors: exact("Q~"), match: matchAzureADSecret, before: 5, after: 35}),
		token("postman-api-key", high, "Postman API key", exact("PMAK-"),
			prefixed(run(clsHexLower, 24, 24), lit("-"), run(clsHexLower, 34, 34))),
		token("linear-api-key", high, "Linear API key", exact("lin_api_"), prefixed(run(clsAlnum, 40, 40))),
		token("doppler-token", high, "Doppler token", exact("dp.pt.", "dp.st.", "dp.ct.", "dp.sa."), prefixed(run(clsAlnum, 40, 44))),
		token("vault-token", high, "HashiCorp Vault token", exact("hvs.", "hvb."), prefixed(run(clsWordDash, 24, 255))),
		rule("terraform-cloud-token", high, "Terraform Cloud / HCP API token",
			pattern{anchors: exact(".atlasv1."), match: matchTerraform, before: 15, after: 71}),
		rule("grafana-token", high, "Grafana service account or cloud token",
			tokenPattern(exact("glsa_"), prefixed(run(clsAlnum, 32, 32), lit("_"), run(clsHex, 8, 8))),
			tokenPattern(exact("glc_"), prefixed(run(clsB64, 32, 400), run(clsB64Pad, 0, 2)))),
		token("newrelic-api-key", high, "New Relic user API key", exact("NRAK-"), prefixed(run(clsUpperDigit, 27, 27))),
		token("pulumi-token", high, "Pulumi access token", cs("pul-"), wordStart(run(clsHexLower, 40, 40))),
		token("databricks-token", high, "Databricks personal access token", cs("dapi"),
			wholeWord(run(clsHexLower, 32, 32), lit("", "-0", "-1", "-2", "-3", "-4", "-5", "-6", "-7", "-8", "-9"))),

		// Medium: bearer tokens, passwords in URLs, generic assignments. A
		// JWT must start a run of base64url bytes: "eyJ" inside one is not a
		// new token (and cannot make the search quadratic).
		token("jwt", med, "JSON Web Token", exact("eyJ"),
			tokenSpec{segs: []seg{run(clsWordDash, 5, 4<<10), lit(".eyJ"), run(clsWordDash, 5, 8<<10), lit("."),
				run(clsWordDash, 0, 2<<10)}, notBefore: clsWordDash}),
		rule("url-password", med, "URL with an embedded password (scheme://user:pass@host)",
			pattern{anchors: ci("://"), before: 33, after: 400, match: matchURLPassword, valid: notPlaceholder}),
		rule("generic-secret-assignment", med, "password=/api_key=/secret=/token= assignment of a high-entropy value",
			pattern{anchors: ci("password", "passwd", "secret", "token", "api_key", "apikey", "api-key", "access_key", "auth_key", "credential"),
				before: 65, after: 320, match: matchAssignment, valid: plausibleSecret}),
	}
}

const (
	privateKeyReach = 16 << 10
	gcpReach        = 4 << 10
)

// matchPrivateKey reports a "-----BEGIN … PRIVATE KEY…-----" block through its
// END line, or through the end of its base64 body when the END is missing.
// The body ends at the next "-----" at the latest, so a hit never reads
// past the next block.
func matchPrivateKey(buf []byte, h Hit) (int, int) {
	hdr := buf[h.End:min(len(buf), h.End+64)]
	close := bytes.Index(hdr, []byte("-----"))
	if close < 0 || !bytes.Contains(hdr[:close], []byte("PRIVATE KEY")) {
		return 0, 0
	}
	body := h.End + close + 5
	lim := min(len(buf), body+privateKeyReach)
	if i := bytes.Index(buf[body:lim], []byte("-----")); i >= 0 {
		if end := body + i + 8; bytes.HasPrefix(buf[body+i:lim], []byte("-----END")) {
			tail := buf[end:min(len(buf), end+64)]
			if j := bytes.Index(tail, []byte("-----")); j >= 0 {
				return h.Start, end + j + 5
			}
			return h.Start, end
		}
		lim = body + i
	}
	end := body
	for end < lim && isKeyBodyByte(buf[end]) {
		end++
	}
	return h.Start, end
}

func isKeyBodyByte(c byte) bool {
	return isWordByte(c) || c == '+' || c == '/' || c == '=' || c == '\\' || c == '\n' || c == '\r' || c == ' ' || c == ':' || c == '-'
}

// matchPuttyKey reports a PuTTY key file from its header through the
// Private-MAC line (or the end of the private lines).
func matchPuttyKey(buf []byte, h Hit) (int, int) {
	lim := min(len(buf), h.End+privateKeyReach)
	if next := bytes.Index(buf[h.End:lim], []byte("PuTTY-User-Key-File-")); next >= 0 {
		lim = h.End + next // the next key file starts here
	}
	region := buf[h.End:lim]
	if !bytes.Contains(region, []byte("Private-Lines:")) {
		return 0, 0
	}
	end := lim
	if i := bytes.Index(region, []byte("Private-MAC:")); i >= 0 {
		end = h.End + i
		for end < lim && buf[end] != '\n' && buf[end] != '\r' {
			end++
		}
	}
	return h.Start, end
}

// matchURLPassword reports the password of scheme://user:password@host.
func matchURLPassword(buf []byte, h Hit) (int, int) {
	s := h.Start
	for s > 0 && h.Start-s < 32 && (isWordByte(buf[s-1]) && buf[s-1] != '_' || buf[s-1] == '+' || buf[s-1] == '.' || buf[s-1] == '-') {
		s--
	}
	if s == h.Start || !isLetter(buf[s]) {
		return 0, 0
	}
	end := h.End
	for end < len(buf) && end-h.End < 400 && !isURLAuthorityEnd(buf[end]) {
		end++
	}
	auth := buf[h.End:end]
	at := bytes.LastIndexByte(auth, '@')
	if at < 0 || at+1 >= len(auth) || !(isWordByte(auth[at+1]) || auth[at+1] == '[') {
		return 0, 0
	}
	colon := bytes.IndexByte(auth[:at], ':')
	if colon < 0 || colon+1 >= at {
		return 0, 0
	}
	return h.End + colon + 1, h.End + at
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isURLAuthorityEnd(c byte) bool {
	switch c {
	case '/', '?', '#', ' ', '\t', '\n', '\r', '"', '\'', '<', '>', '`':
		return true
	}
	return c < 0x20
}

// matchAssignment parses "<ident><keyword><tail>[quote] <op> [quote]<value>"
// where op is =, :=, : or => and reports the value (8-256 bytes up to a
// quote, blank or delimiter). The keyword must end the identifier (tail is
// empty, a plural "s" or "key": db_password, client_secret, SECRET_KEY,
// credentials), so that tokenizer, secretName or password_policy are not
// secrets; an identifier right after ':' is a path segment (an ARN's
// ":secret:"), not a key.
func matchAssignment(buf []byte, h Hit) (int, int) {
	s := h.Start
	for s > 0 && h.Start-s < 64 && isIdentByte(buf[s-1]) {
		s--
	}
	if s > 0 && buf[s-1] == ':' {
		return 0, 0
	}
	i, lim := h.End, min(len(buf), h.End+48)
	for i < lim && isIdentByte(buf[i]) {
		i++
	}
	if !secretNameTail(buf[h.End:i]) {
		return 0, 0
	}
	i = skipBytes(buf, i, "\"' \t")
	switch {
	case i+1 < len(buf) && (buf[i] == ':' && buf[i+1] == '=' || buf[i] == '=' && buf[i+1] == '>'):
		i += 2
	case i < len(buf) && (buf[i] == '=' || buf[i] == ':'):
		i++
	default:
		return 0, 0
	}
	start := skipBytes(buf, i, "\"' \t")
	end := start
	for end < len(buf) && end-start <= 256 && !isValueEnd(buf[end]) {
		end++
	}
	if end-start < 8 || end-start > 256 {
		return 0, 0
	}
	return start, end
}

func isIdentByte(c byte) bool { return isWordByte(c) || c == '.' || c == '-' }

// secretNameTail accepts what may follow a secret keyword at the end of an
// identifier.
func secretNameTail(t []byte) bool {
	switch {
	case len(t) == 0, equalFold(t, "s"), equalFold(t, "key"), equalFold(t, "_key"), equalFold(t, "-key"):
		return true
	}
	return false
}

// skipBytes advances i over at most 4 bytes from set.
func skipBytes(buf []byte, i int, set string) int {
	for n := 0; n < 4 && i < len(buf) && containsByte(set, buf[i]); n++ {
		i++
	}
	return i
}

func isValueEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', ',', ';', '&', '<', '>', '(', ')', '{', '}', '[', ']':
		return true
	}
	return c < 0x20
}

var (
	reSAType = lazyRegexp(`"type"\s{0,8}:\s{0,8}"service_account"`)
	reSAKey  = lazyRegexp(`"private_key"\s{0,8}:\s{0,8}"-----BEGIN`)
)

// matchGCPServiceAccount reports the private_key value of a JSON document
// whose "type" is "service_account".
func matchGCPServiceAccount(buf []byte, h Hit) (int, int) {
	if !reSAType().Match(buf[max(0, h.Start-32):min(len(buf), h.End+1)]) {
		return 0, 0
	}
	lo, hi := max(0, h.Start-gcpReach), min(len(buf), h.End+gcpReach)
	m := reSAKey().FindIndex(buf[lo:hi])
	if m == nil {
		return 0, 0
	}
	start := lo + m[1] - len("-----BEGIN")
	end := bytes.IndexByte(buf[start:hi], '"')
	if end < 0 {
		return 0, 0
	}
	return start, start + end
}

// awsSessionKey is the guard of aws-session-token: the keyword is
// aws_session_token (any case, any of _ . - or nothing as separators) or
// the JSON key "SessionToken".
func awsSessionKey(buf []byte, h Hit) bool {
	before := buf[max(0, h.Start-4):h.Start]
	for _, p := range []string{"aws", "aws_", "aws.", "aws-"} {
		if hasSuffixFold(before, p) {
			return true
		}
	}
	return string(buf[h.Start:h.End]) == "SessionToken" && h.Start > 0 && buf[h.Start-1] == '"' &&
		h.End < len(buf) && buf[h.End] == '"'
}

// parseAssign reads the assignment operator of a contextual rule at i
// (see assign) and returns where the value starts, or -1.
func parseAssign(buf []byte, i int) int {
	i = skipBytes(buf, i, "\"'")
	i = skipBytes(buf, i, " \t\n\r\f")
	switch {
	case i+1 < len(buf) && (buf[i] == ':' && buf[i+1] == '=' || buf[i] == '=' && buf[i+1] == '>'):
		i += 2
	case i < len(buf) && (buf[i] == '=' || buf[i] == ':'):
		i++
	default:
		return -1
	}
	i = skipBytes(buf, i, " \t\n\r\f")
	if i < len(buf) && (buf[i] == '"' || buf[i] == '\'') {
		i++
	}
	return i
}

// matchHerokuAssignment reports the UUID of heroku<ident> = <uuid>
// (HEROKU_API_KEY=…).
func matchHerokuAssignment(buf []byte, h Hit) (int, int) {
	i := h.End
	for i < len(buf) && i-h.End < 30 && isIdentByte(buf[i]) {
		i++
	}
	if i = parseAssign(buf, i); i < 0 {
		return 0, 0
	}
	j := i
	for k, n := range []int{8, 4, 4, 4, 12} {
		if k > 0 {
			if j >= len(buf) || buf[j] != '-' {
				return 0, 0
			}
			j++
		}
		if j = matchRun(buf, j, seg{cls: clsHexLower, min: n, max: n}, true); j < 0 {
			return 0, 0
		}
	}
	if j < len(buf) && isWordByte(buf[j]) {
		return 0, 0
	}
	return i, j
}

// matchMailchimp reports <32 lower-case hex>-us<1-2 digits> around "-us".
func matchMailchimp(buf []byte, h Hit) (int, int) {
	s := h.Start - 32
	if s < 0 || s > 0 && isWordByte(buf[s-1]) {
		return 0, 0
	}
	for _, c := range buf[s:h.Start] {
		if !clsHexLower[c] {
			return 0, 0
		}
	}
	end := matchRun(buf, h.End, seg{cls: clsDigit, min: 1, max: 2}, false)
	if end < 0 || end < len(buf) && clsWordDash[buf[end]] {
		return 0, 0
	}
	return s, end
}

// matchTelegram reports <8-10 digits>:AA<33 base64url> around ":AA".
func matchTelegram(buf []byte, h Hit) (int, int) {
	s := h.Start
	for s > 0 && h.Start-s <= 10 && isDigit(buf[s-1]) {
		s--
	}
	if n := h.Start - s; n < 8 || n > 10 {
		return 0, 0
	}
	end := matchRun(buf, h.End, seg{cls: clsWordDash, min: 33, max: 33}, true)
	if end < 0 {
		return 0, 0
	}
	return s, end
}

var clsAzureSecret = class("a-z", "A-Z", "0-9", "_~.-")

// matchAzureADSecret reports an Entra ID client secret: three bytes of
// [A-Za-z0-9_~.], a digit, "Q~" and 31-34 bytes of [A-Za-z0-9_~.-], not
// part of a longer run of those bytes.
func matchAzureADSecret(buf []byte, h Hit) (int, int) {
	s := h.Start - 4
	if s < 0 || s > 0 && clsAzureSecret[buf[s-1]] || !isDigit(buf[h.Start-1]) {
		return 0, 0
	}
	for _, c := range buf[s : h.Start-1] {
		if c == '-' || !clsAzureSecret[c] {
			return 0, 0
		}
	}
	end := matchRun(buf, h.End, seg{cls: clsAzureSecret, min: 31, max: 34}, false)
	if end < 0 {
		return 0, 0
	}
	return s, end
}

var clsTerraform = class("a-z", "A-Z", "0-9", "_=-")

// matchTerraform reports <14 alphanumerics>.atlasv1.<60-70 bytes>.
func matchTerraform(buf []byte, h Hit) (int, int) {
	s := h.Start - 14
	if s < 0 || s > 0 && clsAlnum[buf[s-1]] {
		return 0, 0
	}
	for _, c := range buf[s:h.Start] {
		if !clsAlnum[c] {
			return 0, 0
		}
	}
	end := matchRun(buf, h.End, seg{cls: clsTerraform, min: 60, max: 70}, true)
	if end < 0 {
		return 0, 0
	}
	return s, end
}

// openAIReach bounds how far a legacy OpenAI key extends around T3BlbkFJ.
const openAIReach = 220

// matchOpenAILegacy reports sk-[proj-|svcacct-|admin-]<16-200>T3BlbkFJ<16-200>
// (bytes of base64url), the key starting a word.
func matchOpenAILegacy(buf []byte, h Hit) (int, int) {
	end := matchRun(buf, h.End, seg{cls: clsWordDash, min: 16, max: 200}, true)
	if end < 0 {
		return 0, 0
	}
	r, lo := h.Start, max(0, h.Start-openAIReach+8)
	for r > lo && clsWordDash[buf[r-1]] {
		r--
	}
	for p := r; p+3+16 <= h.Start; p++ {
		if string(buf[p:p+3]) == "sk-" && (p == 0 || !clsWord[buf[p-1]]) {
			return p, end
		}
	}
	return 0, 0
}

// discordReach is how far after the word "discord" a bot token may end.
const discordReach = 256

// matchDiscordBot reports the first bot token in the discordReach bytes
// after the word discord: [MNO]<23-27>.<6>.<27-38> (base64url bytes).
func matchDiscordBot(buf []byte, h Hit) (int, int) {
	hi := min(len(buf), h.End+discordReach)
	for i := h.End; i < hi; {
		d := bytes.IndexByte(buf[i:hi], '.')
		if d < 0 {
			return 0, 0
		}
		d += i
		if start, end := discordTokenAt(buf, h.End, d, hi); end > start {
			return start, end
		}
		i = d + 1
	}
	return 0, 0
}

// discordTokenAt checks for a bot token whose first dot is at d, within
// [lo, hi).
func discordTokenAt(buf []byte, lo, d, hi int) (int, int) {
	d2 := d + 7
	if d2 >= hi || buf[d2] != '.' {
		return 0, 0
	}
	for _, c := range buf[d+1 : d2] {
		if !clsWordDash[c] {
			return 0, 0
		}
	}
	end := matchRun(buf, d2+1, seg{cls: clsWordDash, min: 27, max: 38}, false)
	if end < 0 || end > hi {
		return 0, 0
	}
	r := d
	for r > lo && d-r < 28 && clsWordDash[buf[r-1]] {
		r--
	}
	for s := max(r, d-28); s <= d-24; s++ {
		if (buf[s] == 'M' || buf[s] == 'N' || buf[s] == 'O') && (s == 0 || !clsWord[buf[s-1]]) {
			return s, end
		}
	}
	return 0, 0
}
