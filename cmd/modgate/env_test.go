package main

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/clientenv"
	"github.com/modgate/modgate/internal/setup"
	"github.com/modgate/modgate/internal/testenv"
)

// runEnvClean runs script in a clean sh with the modgate binary and the go
// command on PATH, an empty HOME and its own GOENV file.
func runEnvClean(t *testing.T, script string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is required:", err)
	}
	bin := testenv.Binary(t)
	home := t.TempDir()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = home // scratch files of the script stay out of the source tree
	cmd.Env = []string{
		"PATH=" + filepath.Dir(bin) + ":" + filepath.Dir(gobin) + ":/usr/bin:/bin",
		"HOME=" + home,
		"GOENV=" + filepath.Join(home, "goenv"),
		"GOCACHE=" + filepath.Join(home, "cache"),
		"GOTOOLCHAIN=local",
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, script, out)
	}
	return string(out)
}

func TestEnvBinaryWithServer(t *testing.T) {
	srv := httptest.NewServer(setup.Handler(setup.Config{Private: "*.corp.example.com,it's/$x", Tokens: true, Version: "test"}))
	defer srv.Close()
	want := srv.URL + "\n*.corp.example.com,it's/$x\nmodgate goauth --url " + srv.URL + " --token-file ~/.config/modgate/token\n"
	query := "go env GOPROXY GONOSUMDB GOAUTH"

	t.Run("sh", func(t *testing.T) {
		got := runEnvClean(t, `eval "$(modgate env --proxy `+srv.URL+` --shell sh)"; `+query)
		if got != want {
			t.Errorf("go env = %q, want %q", got, want)
		}
	})
	t.Run("go-env", func(t *testing.T) {
		// Each line of the output run by sh, one at a time, against GOENV.
		got := runEnvClean(t, `modgate env --proxy `+srv.URL+` > lines && while IFS= read -r line; do sh -c "$line" || exit 1; done < lines; `+query)
		if got != want {
			t.Errorf("go env = %q, want %q", got, want)
		}
	})
	t.Run("explicit private", func(t *testing.T) {
		got := runEnvClean(t, `eval "$(modgate env --proxy `+srv.URL+`/ --private 'a.example/*' --shell sh)"; `+query)
		if want := srv.URL + "\na.example/*\nnetrc\n"; got != want { // GOAUTH at its default
			t.Errorf("go env = %q, want %q", got, want)
		}
	})
}

func TestEnvUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	var stdout, stderr strings.Builder
	if err := envCmd([]string{"--proxy", url}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if want := "go env -w GOPROXY=" + url + "\n"; stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
	if !strings.Contains(stderr.String(), "cannot ask "+url) {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestEnvErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--proxy", "https://user:s3cr3t@h.example"},
		{"--proxy", "http://h.example", "--shell", "tcsh"},
		{"--proxy", "http://h.example", "extra"},
	} {
		var stdout, stderr strings.Builder
		err := envCmd(args, &stdout, &stderr)
		if err == nil || stdout.Len() > 0 || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("env %q: err %v, stdout %q", args, err, stdout.String())
		}
	}
}

func TestEnvFormats(t *testing.T) {
	srv := httptest.NewServer(setup.Handler(setup.Config{SumDB: "off", Version: "test"}))
	defer srv.Close()
	for _, f := range clientenv.Formats {
		var stdout, stderr strings.Builder
		if err := envCmd([]string{"--proxy", srv.URL, "--shell", string(f)}, &stdout, &stderr); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout.String(), "GOPROXY") || !strings.Contains(stdout.String(), "--sumdb off") {
			t.Errorf("%s:\n%s", f, stdout.String())
		}
	}
}
