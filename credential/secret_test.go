package credential

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const testValue = "s3cr3t-VALUE-7f6e"

// revealed reports whether out contains the value in any common rendering.
func revealed(out, value string) bool {
	forms := []string{value, hex.EncodeToString([]byte(value)), strings.ToUpper(hex.EncodeToString([]byte(value))),
		strings.Trim(fmt.Sprint([]byte(value)), "[]"), fmt.Sprintf("%q", []byte(value))}
	for _, f := range forms {
		if strings.Contains(out, f) {
			return true
		}
	}
	return false
}

func TestSecretFormattingNeverReveals(t *testing.T) {
	sec := newSecret("TOKEN", []byte(testValue))
	type exported struct {
		S  *Secret
		V  Secret
		Sr Source
	}
	type hidden struct {
		s  *Secret
		v  Secret
		sr Source
	}
	subjects := []any{sec, *sec, exported{sec, *sec, FromValue([]byte(testValue))}, hidden{sec, *sec, FromValue([]byte(testValue))},
		[]*Secret{sec}, map[string]Secret{"k": *sec}, FromValue([]byte(testValue))}
	for i, subj := range subjects {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %[1]v"} {
			if out := fmt.Sprintf(verb, subj); revealed(out, testValue) {
				t.Errorf("subject %d, %s reveals the value: %s", i, verb, out)
			}
		}
		if out := fmt.Sprint(subj) + fmt.Sprintln(subj); revealed(out, testValue) {
			t.Errorf("subject %d: Sprint reveals the value: %s", i, out)
		}
		if b, err := json.Marshal(subj); err == nil && revealed(string(b), testValue) {
			t.Errorf("subject %d: json reveals the value: %s", i, b)
		}
	}
	if got := fmt.Sprintf("%v|%s|%#v", sec, *sec, sec); got != "[secret TOKEN]|[secret TOKEN]|[secret TOKEN]" {
		t.Errorf("rendering = %q", got)
	}
	if b, _ := json.Marshal(exported{S: sec, V: *sec}); !bytes.Contains(b, []byte(`"S":"[secret TOKEN]","V":"[secret TOKEN]"`)) {
		t.Errorf("json = %s", b)
	}
	if b, _ := sec.MarshalText(); string(b) != "[secret TOKEN]" {
		t.Errorf("MarshalText = %q", b)
	}
	if string(sec.Bytes()) != testValue || sec.Name() != "TOKEN" || sec.Len() != len(testValue) {
		t.Error("accessors broken")
	}
}

func TestSecretZero(t *testing.T) {
	sec := newSecret("T", []byte(testValue))
	view := sec.Bytes()
	copyOfStruct := *sec
	sec.Zero()
	if !bytes.Equal(view, make([]byte, len(testValue))) {
		t.Fatalf("backing bytes not wiped: %q", view)
	}
	if sec.Bytes() != nil || copyOfStruct.Bytes() != nil {
		t.Fatal("value still reachable after Zero")
	}
	sec.Zero() // idempotent
	var empty Secret
	empty.Zero()
	if empty.Bytes() != nil {
		t.Fatal("zero Secret has bytes")
	}
}
