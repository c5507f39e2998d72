package gate

import (
	"bytes"
	"regexp"
)

// Regular-expression fragments shared by the token rules.
const (
	leftEdge  = `(?:^|[^0-9A-Za-z_])`
	rightEdge = `(?:[^0-9A-Za-z_-]|$)`
	assign    = `["']?\s{0,4}(?:=|:=|:|=>)\s{0,4}["']?`
)

// cs returns case-sensitive anchors that must start a word.
func cs(words ...string) []Anchor {
	out := make([]Anchor, len(words))
	for i, w := range words {
		out[i] = Anchor{Keyword: w, CaseSensitive: true, WordStart: isWordByte(w[0])}
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

// token is a rule for a provider token recognised by its fixed prefix: the
// regular expression body must match right at the anchor.
func token(id string, sev Severity, desc string, anchors []Anchor, body string, maxLen int) ruleDef {
	return ruleDef{
		Rule: Rule{ID: id, Severity: sev, Description: desc},
		patterns: []pattern{{
			anchors: anchors,
			re:      regexp.MustCompile(leftEdge + `(` + body + `)` + rightEdge),
			group:   1,
			before:  1,
			after:   maxLen + 1,
			first:   true,
		}},
	}
}

// contextual is a rule whose sensitive value (group 1 of expr) is found near
// a context keyword.
func contextual(anchors []Anchor, expr string, before, after int) pattern {
	return pattern{anchors: anchors, re: regexp.MustCompile(expr), group: 1, before: before, after: after}
}

func rule(id string, sev Severity, desc string, pats ...pattern) ruleDef {
	return ruleDef{Rule: Rule{ID: id, Severity: sev, Description: desc}, patterns: pats}
}

// secretRules is the credential family: SPEC §8 puts private keys and cloud
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
		token("age-secret-key", crit, "age encryption secret key", cs("AGE-SECRET-KEY-1"),
			`AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}`, 74),
		token("aws-access-key-id", crit, "AWS access key id", cs("AKIA", "ASIA", "ABIA", "ACCA"),
			`(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}`, 20),
		rule("aws-secret-access-key", crit, "AWS secret access key in an assignment or right after its key id",
			contextual(ci("secret_access_key", "secretaccesskey", "secret-access-key", "aws_secret_key", "aws-secret-key"),
				`(?i)(?:aws[_.-]?)?secret[_.-]?(?:access[_.-]?)?key`+assign+`([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`, 8, 96),
			pattern{anchors: cs("AKIA", "ASIA"), before: 1, after: 72, first: true,
				re: regexp.MustCompile(leftEdge + `(?:AKIA|ASIA)[A-Z0-9]{16}[\s,;:|"'=]{1,8}([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`), group: 1}),
		rule("aws-session-token", crit, "AWS session token in an assignment",
			contextual(ci("session_token", "sessiontoken", "session-token"),
				`(?:(?i:aws[_.-]?session[_.-]?token)|"SessionToken")`+assign+`([A-Za-z0-9/+=]{100,1000})`, 12, 1040)),
		rule("gcp-service-account-key", crit, "GCP service-account key JSON (private_key of a service_account)",
			pattern{anchors: cs("service_account"), match: matchGCPServiceAccount, before: gcpReach, after: gcpReach}),
		token("alibaba-access-key-id", crit, "Alibaba Cloud access key id", cs("LTAI"), `LTAI[A-Za-z0-9]{12,20}`, 24),
		rule("azure-storage-key", crit, "Azure storage account key (AccountKey=)",
			contextual(ci("accountkey"), `(?i)AccountKey\s{0,2}[=:]\s{0,2}["']?([A-Za-z0-9+/]{86}==)`, 0, 100)),
		rule("azure-shared-access-key", crit, "Azure Service Bus / Event Hubs shared access key",
			contextual(ci("sharedaccesskey"), `(?i)SharedAccessKey\s{0,2}=\s{0,2}([A-Za-z0-9+/]{42,43}=)`, 0, 70)),

		// High: VCS, package registries and provider API secrets.
		token("gcp-api-key", high, "Google API key", cs("AIza"), `AIza[0-9A-Za-z_-]{35}`, 39),
		token("google-oauth-client-secret", high, "Google OAuth client secret", cs("GOCSPX-"), `GOCSPX-[A-Za-z0-9_-]{28}`, 35),
		token("google-oauth-access-token", high, "Google OAuth access token", cs("ya29."), `ya29\.[0-9A-Za-z_-]{20,}`, 2048),
		token("github-pat", high, "GitHub personal access token (classic)", cs("ghp_"), `ghp_[A-Za-z0-9]{36}`, 40),
		token("github-oauth-token", high, "GitHub OAuth access token", cs("gho_"), `gho_[A-Za-z0-9]{36}`, 40),
		token("github-user-token", high, "GitHub user-to-server token", cs("ghu_"), `ghu_[A-Za-z0-9]{36}`, 40),
		token("github-server-token", high, "GitHub server-to-server token", cs("ghs_"), `ghs_[A-Za-z0-9]{36}`, 40),
		token("github-refresh-token", high, "GitHub refresh token", cs("ghr_"), `ghr_[A-Za-z0-9]{36,76}`, 80),
		token("github-fine-grained-pat", high, "GitHub fine-grained personal access token", cs("github_pat_"),
			`github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}`, 93),
		token("gitlab-pat", high, "GitLab personal access token", cs("glpat-"), `glpat-[A-Za-z0-9_-]{20,64}`, 70),
		token("gitlab-token", high, "GitLab deploy, runner, trigger, feed or OAuth token",
			cs("gldt-", "glrt-", "glptt-", "glcbt-", "glft-", "gloas-", "glsoat-", "glimt-", "GR1348941"),
			`(?:(?:gldt|glrt|glptt|glcbt|glft|gloas|glsoat|glimt)-[A-Za-z0-9_-]{20,64}|GR1348941[A-Za-z0-9_-]{20})`, 72),
		token("npm-token", high, "npm access token", cs("npm_"), `npm_[A-Za-z0-9]{36}`, 40),
		token("pypi-token", high, "PyPI upload token", cs("pypi-AgEIcHlwaS5vcmc", "pypi-AgENdGVzdC5weXBpLm9yZw"),
			`pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,}`, 1024),
		token("rubygems-api-key", high, "RubyGems API key", cs("rubygems_"), `rubygems_[0-9a-f]{48}`, 57),
		token("nuget-api-key", high, "NuGet API key", cs("oy2"), `oy2[a-z0-9]{43}`, 46),
		token("docker-hub-pat", high, "Docker Hub personal access token", cs("dckr_pat_"), `dckr_pat_[A-Za-z0-9_-]{27,64}`, 73),
		token("stripe-live-key", high, "Stripe live secret key", cs("sk_live_"), `sk_live_[0-9a-zA-Z]{24,99}`, 107),
		token("stripe-restricted-key", high, "Stripe live restricted key", cs("rk_live_"), `rk_live_[0-9a-zA-Z]{24,99}`, 107),
		token("stripe-webhook-secret", high, "Stripe webhook signing secret", cs("whsec_"), `whsec_[A-Za-z0-9+/]{32,88}`, 94),
		token("slack-bot-token", high, "Slack bot token", cs("xoxb-"), `xoxb-[0-9]{8,13}-[0-9]{8,13}-[A-Za-z0-9]{24,34}`, 70),
		token("slack-user-token", high, "Slack user token", cs("xoxp-"),
			`xoxp-[0-9]{8,13}-[0-9]{8,13}-[0-9]{8,13}-[A-Za-z0-9]{32}`, 90),
		token("slack-token", high, "Slack app, configuration, refresh or legacy token", cs("xapp-", "xoxa-", "xoxe-", "xoxe.", "xoxr-", "xoxs-"),
			`(?:xapp-[0-9]-[A-Z0-9]{9,12}-[0-9]{10,13}-[a-f0-9]{64}|xox[aers][.-](?:xox[bp]-)?(?:[0-9]-)?[A-Za-z0-9-]{10,250})`, 260),
		rule("slack-webhook", high, "Slack incoming webhook URL",
			contextual(ci("hooks.slack.com/"),
				`https?://hooks\.slack\.com/((?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,200})`, 8, 220)),
		rule("twilio-api-key", high, "Twilio API key secret",
			pattern{anchors: cs("SK"), re: regexp.MustCompile(leftEdge + `(SK[0-9a-fA-F]{32})` + rightEdge),
				group: 1, before: 1, after: 33, guard: followedBy(isHexByte, 32)}),
		token("sendgrid-api-key", high, "SendGrid API key", cs("SG."), `SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}`, 69),
		rule("mailgun-api-key", high, "Mailgun API key",
			pattern{anchors: cs("key-"), re: regexp.MustCompile(leftEdge + `(key-[0-9a-f]{32})` + rightEdge),
				group: 1, before: 1, after: 33, guard: followedBy(isHexByte, 32)}),
		rule("mailchimp-api-key", high, "Mailchimp API key",
			pattern{anchors: cs("-us"), re: regexp.MustCompile(leftEdge + `([0-9a-f]{32}-us[0-9]{1,2})` + rightEdge),
				group: 1, before: 33, after: 3, guard: precededBy(isHexByte, 32)}),
		rule("discord-bot-token", high, "Discord bot token near the word discord",
			contextual(ci("discord"),
				leftEdge+`([MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38})`+rightEdge, 0, 256)),
		rule("discord-webhook", high, "Discord webhook URL",
			contextual(ci("discord.com/api/webhooks/", "discordapp.com/api/webhooks/"),
				`https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/([0-9]{17,20}/[A-Za-z0-9_-]{60,68})`, 16, 100)),
		rule("telegram-bot-token", high, "Telegram bot token",
			pattern{anchors: cs(":AA"), re: regexp.MustCompile(`(?:^|[^0-9])([0-9]{8,10}:AA[0-9A-Za-z_-]{33})` + rightEdge),
				group: 1, before: 11, after: 34}),
		rule("openai-api-key", high, "OpenAI API key",
			pattern{anchors: []Anchor{{Keyword: "T3BlbkFJ", CaseSensitive: true}}, re: regexp.MustCompile(leftEdge + `(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{16,200}T3BlbkFJ[A-Za-z0-9_-]{16,200})` + rightEdge),
				group: 1, before: 230, after: 201},
			pattern{anchors: cs("sk-proj-", "sk-svcacct-", "sk-admin-"), re: regexp.MustCompile(leftEdge + `(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,250})` + rightEdge),
				group: 1, before: 1, after: 251}),
		token("anthropic-api-key", high, "Anthropic API key", cs("sk-ant-"), `sk-ant-(?:api|admin|sid)[0-9]{2}-[A-Za-z0-9_-]{80,120}`, 135),
		token("huggingface-token", high, "Hugging Face access token", cs("hf_"), `hf_[A-Za-z]{34}`, 37),
		token("digitalocean-token", high, "DigitalOcean token", cs("dop_v1_", "doo_v1_", "dor_v1_"), `do[opr]_v1_[a-f0-9]{64}`, 71),
		rule("heroku-api-key", high, "Heroku API key",
			pattern{anchors: cs("HRKU-"), re: regexp.MustCompile(leftEdge + `(HRKU-[A-Za-z0-9_-]{60})` + rightEdge), group: 1, before: 1, after: 61},
			contextual(ci("heroku"),
				`(?i)heroku[A-Za-z0-9_.-]{0,30}`+assign+`([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b`, 0, 90)),
		token("shopify-token", high, "Shopify access token or shared secret", cs("shpat_", "shpca_", "shppa_", "shpss_"),
			`shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}`, 38),
		token("square-access-token", high, "Square access token", cs("sq0atp-", "EAAA"), `(?:sq0atp-[0-9A-Za-z_-]{22}|EAAA[A-Za-z0-9_-]{60})`, 64),
		token("square-oauth-secret", high, "Square OAuth secret", cs("sq0csp-"), `sq0csp-[0-9A-Za-z_-]{43}`, 50),
		rule("datadog-api-key", high, "Datadog API or application key in an assignment",
			contextual(ci("datadog", "dd_api_key", "dd_app_key", "dd-api-key", "dd_application_key"),
				`(?i)(?:datadog|dd)[_.-]?(?:api|app|application)?[_.-]?key`+assign+`([a-f0-9]{40}|[a-f0-9]{32})\b`, 0, 120)),
		rule("azure-ad-client-secret", high, "Microsoft Entra ID (Azure AD) client secret",
			pattern{anchors: []Anchor{{Keyword: "Q~", CaseSensitive: true}}, re: regexp.MustCompile(`(?:^|[^A-Za-z0-9_~.-])([A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34})(?:[^A-Za-z0-9_~.-]|$)`),
				group: 1, before: 5, after: 35}),
		token("postman-api-key", high, "Postman API key", cs("PMAK-"), `PMAK-[a-f0-9]{24}-[a-f0-9]{34}`, 64),
		token("linear-api-key", high, "Linear API key", cs("lin_api_"), `lin_api_[A-Za-z0-9]{40}`, 48),
		token("doppler-token", high, "Doppler token", cs("dp.pt.", "dp.st.", "dp.ct.", "dp.sa."), `dp\.(?:pt|st|ct|sa)\.[A-Za-z0-9]{40,44}`, 50),
		token("vault-token", high, "HashiCorp Vault token", cs("hvs.", "hvb."), `hv[sb]\.[A-Za-z0-9_-]{24,255}`, 260),
		rule("terraform-cloud-token", high, "Terraform Cloud / HCP API token",
			pattern{anchors: cs(".atlasv1."), re: regexp.MustCompile(`(?:^|[^A-Za-z0-9])([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70})` + rightEdge),
				group: 1, before: 15, after: 71}),
		token("grafana-token", high, "Grafana service account or cloud token", cs("glsa_", "glc_"),
			`(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,2})`, 410),
		token("newrelic-api-key", high, "New Relic user API key", cs("NRAK-"), `NRAK-[A-Z0-9]{27}`, 32),
		token("pulumi-token", high, "Pulumi access token", cs("pul-"), `pul-[a-f0-9]{40}`, 44),
		token("databricks-token", high, "Databricks personal access token", cs("dapi"), `dapi[a-f0-9]{32}(?:-[0-9])?`, 38),

		// Medium: bearer tokens, passwords in URLs, generic assignments.
		token("jwt", med, "JSON Web Token", cs("eyJ"),
			`eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*`, 8<<10),
		rule("url-password", med, "URL with an embedded password (scheme://user:pass@host)",
			pattern{anchors: ci("://"), before: 33, after: 400, match: matchURLPassword, valid: notPlaceholder}),
		rule("generic-secret-assignment", med, "password=/api_key=/secret=/token= assignment of a high-entropy value",
			pattern{anchors: ci("password", "passwd", "secret", "token", "api_key", "apikey", "api-key", "access_key", "auth_key", "credential"),
				before: 0, after: 320, match: matchAssignment, valid: highEntropySecret}),
	}
}

const (
	privateKeyReach = 16 << 10
	gcpReach        = 4 << 10
)

// matchPrivateKey reports a "-----BEGIN … PRIVATE KEY…-----" block through its
// END line, or through the end of its base64 body when the END is missing.
func matchPrivateKey(buf []byte, h Hit) (int, int) {
	hdr := buf[h.End:min(len(buf), h.End+64)]
	close := bytes.Index(hdr, []byte("-----"))
	if close < 0 || !bytes.Contains(hdr[:close], []byte("PRIVATE KEY")) {
		return 0, 0
	}
	body := h.End + close + 5
	lim := min(len(buf), body+privateKeyReach)
	if i := bytes.Index(buf[body:lim], []byte("-----END")); i >= 0 {
		end := body + i + 8
		tail := buf[end:min(len(buf), end+64)]
		if j := bytes.Index(tail, []byte("-----")); j >= 0 {
			return h.Start, end + j + 5
		}
		return h.Start, end
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

// matchAssignment parses "<keyword><ident>[quote] <op> [quote]<value>"
// where op is =, :=, : or => and reports the value (8-256 bytes up to a
// quote, blank or delimiter).
func matchAssignment(buf []byte, h Hit) (int, int) {
	i, lim := h.End, min(len(buf), h.End+48)
	for i < lim && (isWordByte(buf[i]) || buf[i] == '.' || buf[i] == '-') {
		i++
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
	reSAType = regexp.MustCompile(`"type"\s{0,8}:\s{0,8}"service_account"`)
	reSAKey  = regexp.MustCompile(`"private_key"\s{0,8}:\s{0,8}"-----BEGIN`)
)

// matchGCPServiceAccount reports the private_key value of a JSON document
// whose "type" is "service_account".
func matchGCPServiceAccount(buf []byte, h Hit) (int, int) {
	if !reSAType.Match(buf[max(0, h.Start-32):min(len(buf), h.End+1)]) {
		return 0, 0
	}
	lo, hi := max(0, h.Start-gcpReach), min(len(buf), h.End+gcpReach)
	m := reSAKey.FindIndex(buf[lo:hi])
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
