package clientenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// hostile holds values that break naive quoting in some shell.
var hostile = []string{
	"plain",
	"two words",
	"it's",
	`say "hi"`,
	`$HOME and ${HOME} and $(id) and ` + "`id`",
	`%PATH% and %^x and 100%`,
	`back\slash\`,
	`a&b|c<d>e^f(g)!h;i`,
	"*.corp.example.com,?x[ab]",
	"’typographic‘",
	"",
}

func TestQuoteShRoundTrip(t *testing.T) {
	for _, shell := range []string{"sh", "bash", "dash"} {
		path, err := exec.LookPath(shell)
		if err != nil {
			continue
		}
		for _, v := range hostile {
			out, err := exec.Command(path, "-c", "printf '%s' "+QuoteSh(v)).Output()
			if err != nil {
				t.Fatalf("%s: %q: %v", shell, v, err)
			}
			if string(out) != v {
				t.Errorf("%s: QuoteSh(%q) = %s gives %q", shell, v, QuoteSh(v), out)
			}
		}
	}
}

func TestQuoteOtherShells(t *testing.T) {
	// No fish, PowerShell or cmd.exe here: the exact text each gets.
	cases := []struct {
		f    func(string) string
		in   string
		want string
	}{
		{QuoteFish, `it's \ $x`, `'it\'s \\ $x'`},
		{QuotePowerShell, `it's $x ’a‘`, `'it''s $x ’’a‘‘'`},
		{QuoteCmd, `a&b|c "q" %PATH% 100% ^!()<>`, `a^&b^|c ^"q^" %^PATH%^ 100%^ ^^^!^(^)^<^>`},
		{QuoteDockerfile, `a"b\c$HOME`, `"a\"b\\c\$HOME"`},
		{QuoteSh, "http://h:8080", "http://h:8080"},
		{QuoteSh, "a,b", "'a,b'"},
	}
	for _, c := range cases {
		if got := c.f(c.in); got != c.want {
			t.Errorf("quote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestFor(t *testing.T) {
	e, err := For(Settings{URL: "https://modgate.example.test:8443/", Private: " *.corp.example.com, ,git.example.test/x ", Tokens: true, SumDB: "sum.golang.org"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Var{
		{"GOPROXY", "https://modgate.example.test:8443"},
		{"GONOSUMDB", "*.corp.example.com,git.example.test/x"},
		{"GOAUTH", "modgate goauth --url https://modgate.example.test:8443 --token-file ~/.config/modgate/token"},
	}
	if !slices.Equal(e.Vars, want) {
		t.Errorf("Vars = %q, want %q", e.Vars, want)
	}
	for _, v := range e.Vars {
		if v.Name == "GOPRIVATE" || v.Name == "GONOPROXY" || v.Name == "GOSUMDB" || strings.Contains(v.Value, "direct") {
			t.Errorf("unexpected setting %v", v)
		}
	}

	e, err = For(Settings{URL: "http://10.0.0.1:8080", SumDB: "off", Tokens: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Vars) != 2 || e.Vars[0] != (Var{"GOPROXY", "http://10.0.0.1:8080"}) {
		t.Errorf("Vars = %q", e.Vars)
	}
	notes := strings.Join(e.Notes, "\n")
	for _, w := range []string{"--sumdb off", "over https only"} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes lack %q:\n%s", w, notes)
		}
	}
}

func TestForRejects(t *testing.T) {
	for _, u := range []string{"", "modgate:8080", "ftp://h", "https://", "https://h/a,direct", "https://h|off", "https://u:s3cr3t@h", "https://h/?x=1", "https://h/\nx"} {
		_, err := For(Settings{URL: u})
		if err == nil {
			t.Errorf("For(URL %q) succeeded", u)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error repeats the credential: %v", err)
		}
	}
	if _, err := For(Settings{URL: "http://h", Private: "a\nb"}); err == nil {
		t.Error("a newline in the patterns was accepted")
	}
}

// TestShellOutputWithGo evaluates the sh rendering in a clean shell and
// runs the go-env rendering line by line, each against its own empty
// GOENV, and checks that the go command sees exactly the settings.
func TestShellOutputWithGo(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is required:", err)
	}
	e, err := For(Settings{URL: "http://127.0.0.1:9", Private: "*.corp.example.com,it's/$x", Tokens: true})
	if err != nil {
		t.Fatal(err)
	}
	want := "http://127.0.0.1:9\n*.corp.example.com,it's/$x\nmodgate goauth --url http://127.0.0.1:9 --token-file ~/.config/modgate/token\n"
	query := gobin + " env GOPROXY GONOSUMDB GOAUTH"
	for _, f := range []Format{Sh, GoEnv} {
		t.Run(string(f), func(t *testing.T) {
			script := Render(e, f)
			if f == GoEnv {
				script = strings.ReplaceAll(script, "go env -w ", gobin+" env -w ")
				script = "set -e\n" + script
			} else {
				script = "eval " + QuoteSh(script) + "\n"
			}
			out := runClean(t, script+query)
			if out != want {
				t.Errorf("go env after\n%s\n= %q, want %q", script, out, want)
			}
		})
	}
}

func runClean(t *testing.T, script string) string {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"GOENV=" + filepath.Join(home, "goenv"),
		"GOCACHE=" + filepath.Join(home, "cache"),
		"GOTOOLCHAIN=local",
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return string(out)
}
