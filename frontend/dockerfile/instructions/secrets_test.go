package instructions

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLooksSecret(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"PASSWORD": true, "DB_PASSWORD": true, "GITHUB_TOKEN": true, "api_key": true, "AWS_SECRET_ACCESS_KEY": true,
		"secret_MESSAGE": true, "AUTH": true, "NPM_AUTH_TOKEN": true, "pword": true, "PASSWD": true,
		"APIKEY": true, "credentials": true, "MY_CREDENTIAL": true, "MY_SECRET_DATA": true, "A_PUBLIC_TOKEN": false,
		"MONKEY": false, "KEYBOARD_LAYOUT": false, "PATH": false, "TOKENIZER": false, "GO_VERSION": false,
		"PUBLIC_KEY": false, "SSH_KEY_FILE": false, "API_KEY_VERSION": false, "AUTHOR": false, "passwords": false,
	} {
		if got := looksSecret(name); got != want {
			t.Errorf("looksSecret(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestLintSecretsUsedInArgOrEnv(t *testing.T) {
	t.Parallel()
	src := "ARG GITHUB_TOKEN\n" + // 1
		"FROM base\n" + // 2
		"ARG VERSION=1 NPM_TOKEN\n" + // 3
		"ENV DB_PASSWORD=x PUBLIC_KEY=y\n" + // 4
		"ENV api_key value\n" // 5
	df, err := Parse(context.Background(), []byte("# check=skip=LegacyKeyValueFormat\n"+src), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range df.Warnings {
		got = append(got, itoaLine(w.Range.Start)+" "+w.Rule+": "+w.Message)
	}
	want := []string{
		`2 SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG "GITHUB_TOKEN")`,
		`4 SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG "NPM_TOKEN")`,
		`5 SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV "DB_PASSWORD")`,
		`6 SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV "api_key")`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	df, err = Parse(context.Background(), []byte("# check=skip=SecretsUsedInArgOrEnv\n"+src), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range df.Warnings {
		if w.Rule == "SecretsUsedInArgOrEnv" {
			t.Errorf("skipped rule reported: %v", w)
		}
	}
}

func itoaLine(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoaLine(n/10) + string(rune('0'+n%10))
}
