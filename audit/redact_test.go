package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
)

// secretForms lists byte strings that must never reach the file for secret.
func secretForms(secret string) []string {
	jsonForm, _ := json.Marshal(secret)
	return []string{
		secret,
		strings.Trim(string(jsonForm), `"`),
		base64.StdEncoding.EncodeToString([]byte(secret)),
		base64.RawURLEncoding.EncodeToString([]byte(secret)),
		url.QueryEscape(secret),
	}
}

func TestRedactScrubsSecrets(t *testing.T) {
	const token = "tok-9f8e7d6c5b4a"
	const tricky = `p"a\ss<w>&rd`
	const pin = "8675309"
	r := NewSecretRedactor(map[string][]byte{"TOKEN": []byte(token), "TRICKY": []byte(tricky), "PIN": []byte(pin), "EMPTY": nil})
	l, path := openTemp(t)
	l.SetRedact(r.Redact)
	payload := map[string]any{
		"argv":      []string{"sh", "-c", "curl -H 'Authorization: " + token + "' x"},
		"env":       map[string]string{"API": token, token: "key position"},
		"nested":    []any{map[string]any{"deep": "pre" + tricky + "post"}},
		"encoded":   base64.StdEncoding.EncodeToString([]byte(token)),
		"urlform":   "https://h/?q=" + url.QueryEscape(tricky),
		"number":    8675309,
		"unrelated": "keep me 123",
	}
	e, err := l.Append(context.Background(), "exec "+token, "sb-"+token, payload)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{token, tricky, pin} {
		for _, form := range secretForms(secret) {
			if bytes.Contains(data, []byte(form)) {
				t.Errorf("secret form %q written to the audit file:\n%s", form, data)
			}
		}
	}
	for _, want := range []string{"[REDACTED:TOKEN]", "[REDACTED:TRICKY]", `"number":"[REDACTED:PIN]"`, "keep me 123"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("file lacks %q:\n%s", want, data)
		}
	}
	if e.Type != "exec [REDACTED:TOKEN]" || e.SandboxID != "sb-[REDACTED:TOKEN]" {
		t.Errorf("type/id not scrubbed: %q %q", e.Type, e.SandboxID)
	}
	if res := verifyPath(t, path); !res.OK {
		t.Fatalf("redacted chain does not verify: %+v", res)
	}
}

// TestRedactHookIsWhatScrubs is the control: without the hook the value
// does reach the file, so the test above can fail.
func TestRedactHookIsWhatScrubs(t *testing.T) {
	l, path := openTemp(t)
	if _, err := l.Append(context.Background(), "exec", "", map[string]string{"v": "tok-9f8e7d6c5b4a"}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte("tok-9f8e7d6c5b4a")) {
		t.Fatal("control failed: value missing without redaction")
	}
}

func TestRedactJSONKeepsOrderAndValidity(t *testing.T) {
	in := []byte(`{"b":"xSECRETx","a":[1,-2.5e3,"SECRET"],"c":{"SECRET":true,"d":null}}`)
	fn := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("SECRET"), []byte("[R]")) }
	got := string(redactJSON(in, fn))
	want := `{"b":"x[R]x","a":[1,-2.5e3,"[R]"],"c":{"[R]":true,"d":null}}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestSecretRedactorZero(t *testing.T) {
	v := []byte("hunter2-hunter2")
	r := NewSecretRedactor(map[string][]byte{"PW": v})
	clear(v) // the caller's copy may be wiped at once
	if got := r.Redact([]byte("pw=hunter2-hunter2")); string(got) != "pw=[REDACTED:PW]" {
		t.Fatalf("Redact = %q", got)
	}
	kept := r.needles[0].value
	r.Zero()
	if !bytes.Equal(kept, make([]byte, len(kept))) {
		t.Fatalf("Zero left %q", kept)
	}
	in := []byte("pw=hunter2-hunter2")
	if got := r.Redact(in); !bytes.Equal(got, in) {
		t.Fatalf("zeroed redactor still redacts: %q", got)
	}
}

func TestSecretRedactorLongestFirst(t *testing.T) {
	r := NewSecretRedactor(map[string][]byte{"SHORT": []byte("abc"), "LONG": []byte("abcdef")})
	if got := string(r.Redact([]byte("abcdef abc"))); got != "[REDACTED:LONG] [REDACTED:SHORT]" {
		t.Fatalf("Redact = %q", got)
	}
}
