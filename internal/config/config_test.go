package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over m. GOPROXY defaults to a test proxy so that Load
// does not run the go command.
func env(m map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := m[k]; ok {
			return v
		}
		if k == "GOPROXY" {
			return "https://proxy.example.com"
		}
		return ""
	}
}

func noGoEnv(t *testing.T) {
	t.Helper()
	old := goEnv
	goEnv = func(key string) (string, error) {
		t.Errorf("unexpected goEnv(%q)", key)
		return "", errors.New("unexpected")
	}
	t.Cleanup(func() { goEnv = old })
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, args []string, getenv func(string) string) *Config {
	t.Helper()
	c, err := Load(args, getenv)
	if err != nil {
		t.Fatalf("Load(%q): %v", args, err)
	}
	return c
}

func wantErr(t *testing.T, err error, substrs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", substrs)
	}
	for _, s := range substrs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

func TestDefaults(t *testing.T) {
	noGoEnv(t)
	c := mustLoad(t, nil, env(nil))
	want := Config{
		Listen:              ":8080",
		DataDir:             "modgate-data",
		Upstream:            "https://proxy.example.com",
		UpstreamDerived:     true,
		ListTTL:             5 * time.Minute,
		NegativeTTL:         time.Minute,
		UpstreamRate:        20,
		UpstreamBurst:       100,
		FetchTimeout:        10 * time.Minute,
		UpstreamIdleTimeout: 30 * time.Second,
		ShutdownTimeout:     30 * time.Second,
		MinSendRate:         8 << 10,
		SendTimeout:         30 * time.Second,
		MaxConns:            4096,
		SumDB:               "sum.golang.org",
		Prefetch:            true,
		GitTimeout:          10 * time.Minute,
		GitMaxRepoSize:      2 << 30,
		AuditMaxSize:        100 << 20,
		AuditMaxFiles:       10,
		Storage:             "disk",
		S3Region:            "us-east-1",
		Lease:               30 * time.Second,
		LogLevel:            "info",
		LogFormat:           "json",
	}
	got := *c
	got.sources = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
	if s := c.Source("listen"); s != "default listen" {
		t.Errorf("Source(listen) = %q", s)
	}
	if s := c.Source("upstream"); s != "env GOPROXY" {
		t.Errorf("Source(upstream) = %q", s)
	}
}

func TestPrecedence(t *testing.T) {
	files := map[string]string{
		"modgate.yaml": `
listen: ":1"
data-dir: file-dir
list-ttl: 1m
negative-ttl: 0
log-level: debug
log-format: text
`,
		"modgate.yml": `{listen: ":1", data-dir: file-dir, list-ttl: 1m, negative-ttl: 0s, log-level: debug, log-format: text}`,
		"modgate.toml": `
listen = ":1"
data-dir = "file-dir"
list-ttl = "1m"
negative-ttl = 0
log-level = "debug"
log-format = "text"
`,
	}
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			noGoEnv(t)
			path := writeFile(t, name, content)
			getenv := env(map[string]string{
				"MODGATE_LISTEN":    ":2",
				"MODGATE_LIST_TTL":  "3m",
				"MODGATE_LOG_LEVEL": "warn",
			})
			c := mustLoad(t, []string{"--config", path, "--listen", ":3", "-log-level=error"}, getenv)

			checks := []struct {
				name, got, want, source string
			}{
				{"listen", c.Listen, ":3", "flag --listen"},
				{"log-level", c.LogLevel, "error", "flag --log-level"},
				{"list-ttl", c.ListTTL.String(), "3m0s", "env MODGATE_LIST_TTL"},
				{"data-dir", c.DataDir, "file-dir", "config file " + path + ": data-dir"},
				{"negative-ttl", c.NegativeTTL.String(), "0s", "config file " + path + ": negative-ttl"},
				{"log-format", c.LogFormat, "text", "config file " + path + ": log-format"},
				{"fetch-timeout", c.FetchTimeout.String(), "10m0s", "default fetch-timeout"},
				{"config", c.ConfigFile, path, "flag --config"},
			}
			for _, ch := range checks {
				if ch.got != ch.want {
					t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
				}
				if s := c.Source(ch.name); s != ch.source {
					t.Errorf("Source(%s) = %q, want %q", ch.name, s, ch.source)
				}
			}
		})
	}
}

func TestConfigFileFromEnv(t *testing.T) {
	noGoEnv(t)
	path := writeFile(t, "m.yaml", "data-dir: from-file\n")
	c := mustLoad(t, nil, env(map[string]string{"MODGATE_CONFIG": path}))
	if c.DataDir != "from-file" || c.ConfigFile != path {
		t.Errorf("DataDir = %q, ConfigFile = %q", c.DataDir, c.ConfigFile)
	}

	// --config beats MODGATE_CONFIG: the file named by the env is not read.
	other := writeFile(t, "o.toml", `data-dir = "from-flag-file"`)
	c = mustLoad(t, []string{"--config=" + other}, env(map[string]string{"MODGATE_CONFIG": "/nonexistent/m.yaml"}))
	if c.DataDir != "from-flag-file" || c.ConfigFile != other {
		t.Errorf("DataDir = %q, ConfigFile = %q", c.DataDir, c.ConfigFile)
	}

	_, err := Load(nil, env(map[string]string{"MODGATE_CONFIG": filepath.Join(t.TempDir(), "missing.yaml")}))
	wantErr(t, err, "config file ", "missing.yaml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v is not ErrNotExist", err)
	}
}

func TestFileEdgeCases(t *testing.T) {
	noGoEnv(t)
	for _, content := range []string{"", "# only a comment\n", "listen:\n"} {
		path := writeFile(t, "m.yaml", content)
		if c := mustLoad(t, []string{"--config", path}, env(nil)); c.Listen != ":8080" {
			t.Errorf("%q: Listen = %q", content, c.Listen)
		}
	}
	// An unquoted :port is a plain YAML string.
	path := writeFile(t, "m.yaml", "listen: :9090\n")
	if c := mustLoad(t, []string{"--config", path}, env(nil)); c.Listen != ":9090" {
		t.Errorf("Listen = %q", c.Listen)
	}

	bad := []struct {
		name, content string
		want          []string
	}{
		{"c.yaml", "config: other.yaml\n", []string{`key "config" is not allowed`}},
		{"c.toml", "config = \"other.toml\"\n", []string{`key "config" is not allowed`}},
		{"c.json", "{}", []string{"unsupported format"}},
		{"c.yaml", "- listen\n", []string{"top level must be a mapping"}},
		{"c.yaml", "listen: \":1\"\nlisten: \":2\"\n", []string{`duplicate key "listen"`}},
		{"c.yaml", "listen: [\":1\"]\n", []string{"listen: got a list"}},
		{"c.toml", "[listen]\nport = 1\n", []string{"listen: got a table"}},
		{"c.yaml", "listen: \":1\n", []string{"yaml:"}},
		{"c.toml", "listen = \n", []string{"toml:"}},
	}
	for _, b := range bad {
		path := writeFile(t, b.name, b.content)
		_, err := Load([]string{"--config", path}, env(nil))
		wantErr(t, err, append([]string{"config file " + path + ": "}, b.want...)...)
	}
}

func TestUnknownKeys(t *testing.T) {
	noGoEnv(t)
	for name, content := range map[string]string{
		"modgate.yaml": "listen: \":1\"\nlistn: \":2\"\n",
		"modgate.toml": "listen = \":1\"\nlistn = \":2\"\n",
	} {
		path := writeFile(t, name, content)
		_, err := Load([]string{"--config", path}, env(nil))
		want := "config file " + path + `: unknown key "listn" (did you mean "listen"?)`
		if err == nil || err.Error() != want {
			t.Errorf("%s: got error %v, want %q", name, err, want)
		}
	}

	_, err := Load([]string{"--listn", ":1"}, env(nil))
	wantErr(t, err, "flag --listn: unknown flag")
	_, err = Load([]string{"--listen"}, env(nil))
	wantErr(t, err, "flag --listen: missing value")
	_, err = Load([]string{"--listen", ":1", "extra"}, env(nil))
	wantErr(t, err, `unexpected argument "extra"`)

	environ := []string{"HOME=/home/x", "GOPROXY=https://a.example", "MODGATE_LISTN=:1"}
	_, err = LoadEnviron(nil, environ)
	wantErr(t, err, "env MODGATE_LISTN: unknown variable")

	// MODGATE_CONFIG is known; other variables are ignored.
	path := writeFile(t, "m.yaml", "log-format: text\n")
	environ = []string{"HOME=/home/x", "GOPROXY=https://a.example", "MODGATE_CONFIG=" + path, "MODGATE_LIST_TTL=2m", "NOT_MODGATE_X=1"}
	c, err := LoadEnviron([]string{"--listen=127.0.0.1:9"}, environ)
	if err != nil {
		t.Fatal(err)
	}
	if c.LogFormat != "text" || c.ListTTL != 2*time.Minute || c.Listen != "127.0.0.1:9" || c.Upstream != "https://a.example" {
		t.Errorf("LoadEnviron: %+v", c)
	}
}

func TestInvalidValues(t *testing.T) {
	noGoEnv(t)
	_, err := Load(nil, env(map[string]string{"MODGATE_LIST_TTL": "5x"}))
	wantErr(t, err, `env MODGATE_LIST_TTL: invalid duration "5x"`)

	_, err = Load([]string{"--fetch-timeout", "5x"}, env(nil))
	wantErr(t, err, `flag --fetch-timeout: invalid duration "5x"`)

	path := writeFile(t, "m.yaml", "shutdown-timeout: 5x\n")
	_, err = Load([]string{"--config", path}, env(nil))
	wantErr(t, err, "config file "+path+`: shutdown-timeout: invalid duration "5x"`)

	path = writeFile(t, "m.toml", "shutdown-timeout = 5\n")
	_, err = Load([]string{"--config", path}, env(nil))
	wantErr(t, err, "config file "+path+`: shutdown-timeout: invalid duration "5"`)

	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--list-ttl=0"}, []string{"flag --list-ttl: must be greater than 0"}},
		{[]string{"--fetch-timeout=-1s"}, []string{"flag --fetch-timeout: must be greater than 0"}},
		{[]string{"--shutdown-timeout=0s"}, []string{"flag --shutdown-timeout: must be greater than 0"}},
		{[]string{"--negative-ttl=-1s"}, []string{"flag --negative-ttl: must not be negative"}},
		{[]string{"--listen=8080"}, []string{"flag --listen: invalid address"}},
		{[]string{"--log-level=verbose"}, []string{"flag --log-level:", "debug, info, warn, error"}},
		{[]string{"--log-format=xml"}, []string{"flag --log-format:", "json, text"}},
		{[]string{"--data-dir="}, []string{"flag --data-dir: must not be empty"}},
		{[]string{"--upstream=ftp://a.example"}, []string{"flag --upstream:", `"ftp://a.example"`}},
		{[]string{"--upstream=,"}, []string{"flag --upstream:", "no entries"}},
		// Both problems are reported.
		{[]string{"--list-ttl=0", "--log-format=xml"}, []string{"flag --list-ttl", "flag --log-format"}},
	}
	for _, tc := range cases {
		_, err := Load(tc.args, env(nil))
		wantErr(t, err, tc.want...)
	}

	// Only the final value is validated: a bad file value overridden by a
	// flag is fine, and negative-ttl may be 0.
	path = writeFile(t, "m.yaml", "list-ttl: 0s\n")
	c := mustLoad(t, []string{"--config", path, "--list-ttl", "1h", "--negative-ttl", "0"}, env(nil))
	if c.ListTTL != time.Hour || c.NegativeTTL != 0 {
		t.Errorf("ListTTL = %v, NegativeTTL = %v", c.ListTTL, c.NegativeTTL)
	}
}

func TestTLS(t *testing.T) {
	noGoEnv(t)
	cert := writeFile(t, "cert.pem", "cert")
	key := writeFile(t, "key.pem", "key")

	_, err := Load([]string{"--tls-cert", cert}, env(nil))
	wantErr(t, err, "flag --tls-cert:", "tls-key is not set")

	_, err = Load(nil, env(map[string]string{"MODGATE_TLS_KEY": key}))
	wantErr(t, err, "env MODGATE_TLS_KEY:", "tls-cert is not set")

	_, err = Load([]string{"--tls-cert", cert, "--tls-key", filepath.Join(t.TempDir(), "missing.pem")}, env(nil))
	wantErr(t, err, "flag --tls-key:", "missing.pem")

	_, err = Load([]string{"--tls-cert", filepath.Dir(cert), "--tls-key", key}, env(nil))
	wantErr(t, err, "flag --tls-cert:", "not a regular file")

	c := mustLoad(t, []string{"--tls-cert", cert, "--tls-key", key}, env(nil))
	if c.TLSCert != cert || c.TLSKey != key {
		t.Errorf("TLSCert = %q, TLSKey = %q", c.TLSCert, c.TLSKey)
	}
}

func TestHelpAndUsage(t *testing.T) {
	noGoEnv(t)
	var buf bytes.Buffer
	old := helpOutput
	helpOutput = &buf
	defer func() { helpOutput = old }()

	for _, arg := range []string{"--help", "-h"} {
		buf.Reset()
		_, err := Load([]string{arg}, env(nil))
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("Load(%s): err = %v, want flag.ErrHelp", arg, err)
		}
		if !strings.Contains(buf.String(), "Usage: modgate serve") {
			t.Errorf("Load(%s) printed %q", arg, buf.String())
		}
	}

	buf.Reset()
	Usage(&buf)
	usage := buf.String()
	for _, o := range new(Config).options() {
		named := "--" + o.name + " " // followed by its kind; a bool flag by nothing
		if o.isBool {
			named = "--" + o.name + "\n"
		}
		if !strings.Contains(usage, named) || !strings.Contains(usage, "env "+EnvName(o.name)) {
			t.Errorf("usage does not describe %s:\n%s", o.name, usage)
		}
	}
	for _, s := range []string{"--list-ttl duration", "MODGATE_LIST_TTL, default 5m\n", `default ":8080"`, "default 30s", "default 10m"} {
		if !strings.Contains(usage, s) {
			t.Errorf("usage does not contain %q:\n%s", s, usage)
		}
	}
}

func TestOptionTable(t *testing.T) {
	names := map[string]bool{}
	envs := map[string]bool{}
	for _, o := range new(Config).options() {
		if names[o.name] || envs[EnvName(o.name)] {
			t.Errorf("duplicate option %s", o.name)
		}
		names[o.name], envs[EnvName(o.name)] = true, true
		if o.help == "" {
			t.Errorf("option %s has no help", o.name)
		}
	}
	if got := EnvName("list-ttl"); got != "MODGATE_LIST_TTL" {
		t.Errorf("EnvName(list-ttl) = %q", got)
	}
	// The defaults must be valid (apart from the derived upstream).
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestKinds(t *testing.T) {
	var s struct {
		n    int
		b    bool
		list []string
		size ByteSize
	}
	n := opt(&s.n, "n", intKind, 3, "")
	b := opt(&s.b, "b", boolKind, false, "")
	list := opt(&s.list, "list", stringListKind, []string{"x"}, "")
	size := opt(&s.size, "size", byteSizeKind, 1<<20, "")
	for _, o := range []*option{n, b, list, size} {
		o.reset()
	}
	if s.n != 3 || s.b || len(s.list) != 1 || s.size != 1<<20 || size.defText != "1MiB" {
		t.Fatalf("defaults: %+v, size default %q", s, size.defText)
	}
	if !b.isBool || n.isBool {
		t.Error("isBool wrong")
	}

	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ok(n.setText("42"))
	ok(b.setText("true"))
	ok(list.setText(" a, b ,,c "))
	ok(size.setText("1.5GiB"))
	if s.n != 42 || !s.b || strings.Join(s.list, "|") != "a|b|c" || s.size != 3<<29 {
		t.Errorf("setText: %+v", s)
	}
	ok(n.setFile(7))
	ok(b.setFile(false))
	ok(list.setFile([]any{"d", 5}))
	ok(size.setFile(int64(2048)))
	if s.n != 7 || s.b || strings.Join(s.list, "|") != "d|5" || s.size != 2048 || size.get() != "2KiB" {
		t.Errorf("setFile: %+v", s)
	}
	wantErr(t, n.setText("x"), `invalid integer "x"`)
	wantErr(t, n.setFile(1.5), `invalid integer "1.5"`)
	wantErr(t, b.setText("maybe"), `invalid boolean "maybe"`)
	wantErr(t, b.setFile(1), "invalid boolean")
	wantErr(t, size.setText("12XB"), `invalid byte size "12XB"`)
	wantErr(t, size.setText("-1"), "invalid byte size")

	for in, want := range map[string]ByteSize{"0": 0, "10": 10, "1kB": 1000, "1KiB": 1024, "2 MB": 2e6, "3mib": 3 << 20, "1TiB": 1 << 40, "7B": 7} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}

	// A bool option is a flag that needs no value.
	var rec []flagSetting
	fs := newFlagSet([]*option{b}, &rec)
	ok(fs.Parse([]string{"--b"}))
	if len(rec) != 1 || rec[0].value != "true" {
		t.Errorf("bool flag recorded %+v", rec)
	}
}

func TestDefaultUpstream(t *testing.T) {
	failGoEnv := func(key string) (string, error) {
		t.Errorf("unexpected goEnv(%q)", key)
		return "", errors.New("unexpected")
	}
	cases := []struct {
		goproxy, want, wantErr string
	}{
		{goproxy: "https://a.example,direct", want: "https://a.example"},
		{goproxy: "https://a.example|https://b.example,off", want: "https://a.example|https://b.example"},
		{goproxy: "https://a.example|direct,https://b.example", want: "https://a.example|https://b.example"},
		{goproxy: "direct,https://a.example|http://127.0.0.1:3000", want: "https://a.example|http://127.0.0.1:3000"},
		{goproxy: "https://a.example,off,https://b.example", want: "https://a.example"},
		{goproxy: "a.example/mirror, ,file:///srv/mods,https://b.example", want: "https://a.example/mirror,https://b.example"},
		{goproxy: "direct", wantErr: "pass --upstream"},
		{goproxy: "off", wantErr: "pass --upstream"},
		{goproxy: "off,https://a.example", wantErr: "pass --upstream"},
		{goproxy: "file:///srv/mods,direct", wantErr: "pass --upstream"},
	}
	for _, tc := range cases {
		got, err := DefaultUpstream(env(map[string]string{"GOPROXY": tc.goproxy}), failGoEnv)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "env GOPROXY") {
				t.Errorf("GOPROXY=%q: got %q, %v; want error containing %q", tc.goproxy, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("GOPROXY=%q: got %q, %v; want %q", tc.goproxy, got, err, tc.want)
		}
	}

	// GOPROXY unset: ask the go command.
	var asked []string
	fromGo := func(key string) (string, error) {
		asked = append(asked, key)
		return "https://b.example,direct", nil
	}
	got, err := DefaultUpstream(env(map[string]string{"GOPROXY": ""}), fromGo)
	if err != nil || got != "https://b.example" || strings.Join(asked, ",") != "GOPROXY" {
		t.Errorf("go env fallback: got %q, %v, asked %q", got, err, asked)
	}
	_, err = DefaultUpstream(env(map[string]string{"GOPROXY": ""}), func(string) (string, error) { return "direct", nil })
	wantErr(t, err, "go env GOPROXY", "pass --upstream")
	_, err = DefaultUpstream(env(map[string]string{"GOPROXY": ""}), func(string) (string, error) { return "", errors.New("no go") })
	wantErr(t, err, "no go", "pass --upstream")
}

func TestLoadUpstream(t *testing.T) {
	old := goEnv
	defer func() { goEnv = old }()
	goEnv = func(key string) (string, error) { return "https://b.example|direct", nil }

	c := mustLoad(t, nil, env(map[string]string{"GOPROXY": ""}))
	if c.Upstream != "https://b.example" || !c.UpstreamDerived || c.Source("upstream") != "go env GOPROXY" {
		t.Errorf("derived: Upstream = %q, derived %v, source %q", c.Upstream, c.UpstreamDerived, c.Source("upstream"))
	}

	goEnv = func(key string) (string, error) { return "off", nil }
	_, err := Load(nil, env(map[string]string{"GOPROXY": ""}))
	wantErr(t, err, "pass --upstream")

	// An explicit upstream is used as given (direct and off included), with
	// https:// added to bare hosts as the go command does.
	c = mustLoad(t, []string{"--upstream", "127.0.0.1:3000|http://a.example/,direct"}, env(nil))
	if c.Upstream != "https://127.0.0.1:3000|http://a.example/,direct" || c.UpstreamDerived || c.Source("upstream") != "flag --upstream" {
		t.Errorf("explicit: Upstream = %q, derived %v, source %q", c.Upstream, c.UpstreamDerived, c.Source("upstream"))
	}
}

func TestGoEnv(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not in PATH")
	}
	got, err := GoEnv("GOOS")
	if err != nil || got != runtime.GOOS {
		t.Errorf(`GoEnv("GOOS") = %q, %v; want %q`, got, err, runtime.GOOS)
	}
}
