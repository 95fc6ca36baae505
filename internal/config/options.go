package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/modgate/modgate/internal/proxylist"
)

// options is the single table of configuration options. Every option is a
// flag (--name), an environment variable (MODGATE_NAME) and a config file key
// (name); all three are derived from this table, and the target field of c
// is where the value lands. To add an option, add a field to Config and one
// line here.
func (c *Config) options() []*option {
	return []*option{
		opt(&c.ConfigFile, "config", stringKind, "", "path of a YAML or TOML config file"),
		opt(&c.Listen, "listen", stringKind, ":8080", "address to serve HTTP on", hostPort),
		opt(&c.DataDir, "data-dir", stringKind, "modgate-data", "directory for the local-disk storage", notEmpty),
		opt(&c.Upstream, "upstream", stringKind, "", "upstream proxy list in GOPROXY syntax (default: the http(s) entries of $GOPROXY or `go env GOPROXY`)", proxyList),
		opt(&c.TLSCert, "tls-cert", stringKind, "", "TLS certificate file (PEM); serve HTTPS when set together with --tls-key", fileExists),
		opt(&c.TLSKey, "tls-key", stringKind, "", "TLS private key file (PEM); serve HTTPS when set together with --tls-cert", fileExists),
		opt(&c.ListTTL, "list-ttl", durationKind, 5*time.Minute, "how long @v/list, @latest and branch/commit queries are fresh before a background refresh", positive),
		opt(&c.NegativeTTL, "negative-ttl", durationKind, time.Minute, "how long a not-found answer is cached (0 disables)", nonNegative),
		opt(&c.UpstreamRate, "upstream-rate", intKind, 20, "lookups per second each client address may send upstream for files not stored yet (a lookup that finds its module gives its token back); 0 disables the limit", atLeast(0)),
		opt(&c.UpstreamBurst, "upstream-burst", intKind, 100, "lookups a client address may send upstream at once before --upstream-rate applies", atLeast(1)),
		opt(&c.FetchTimeout, "fetch-timeout", durationKind, 10*time.Minute, "upper bound on one upstream fetch (a large zip)", positive),
		opt(&c.UpstreamIdleTimeout, "upstream-idle-timeout", durationKind, 30*time.Second, "abort an upstream download that sends no data for this long (separate from --fetch-timeout, the bound on the whole fetch)", positive),
		opt(&c.ShutdownTimeout, "shutdown-timeout", durationKind, 30*time.Second, "how long SIGTERM waits for in-flight requests", positive),
		opt(&c.MinSendRate, "min-send-rate", byteSizeKind, 8<<10, "slowest a client may take a response, in bytes per second over --send-timeout; slower clients, and stalled ones, are dropped", greaterThanZero[ByteSize]),
		opt(&c.SendTimeout, "send-timeout", durationKind, 30*time.Second, "window of --min-send-rate: responses go out in chunks of rate × window bytes, each of which the client must take within the window (nothing is timed before a response starts)", positive),
		opt(&c.MaxConns, "max-conns", intKind, 4096, "most client connections open at once; further clients wait to be accepted (lowered at start to fit the open-file limit)", greaterThanZero[int]),
		opt(&c.SumDB, "sumdb", stringKind, "sum.golang.org", "checksum database to verify public modules against, GOSUMDB syntax (\"name\", \"name+key [URL]\"); \"off\" disables verification", notEmpty),
		opt(&c.NoSumDB, "nosumdb", stringKind, "", "comma-separated module path patterns (GONOSUMDB syntax) never verified and never looked up", globList),
		opt(&c.Prefetch, "prefetch", boolKind, true, "when serving a go.mod, fetch the .info and go.mod of the modules it requires before clients ask for them (never zips; bounded, dropped under load)"),
		opt(&c.Private, "private", stringKind, "", "comma-separated module path patterns (GOPRIVATE syntax) fetched straight from their git servers, never from an upstream nor the checksum database", globList),
		opt(&c.Insecure, "insecure", stringKind, "", "comma-separated module path patterns (GOINSECURE syntax) whose discovery and git traffic may use plain http", globList),
		opt(&c.Netrc, "netrc", stringKind, "", "netrc file with git hosts' credentials (default: $NETRC, else ~/.netrc)", fileExists),
		opt(&c.WebhookSecret, "webhook-secret", stringKind, "", "enables POST /webhooks/git: the GitLab token or the Gitea/GitHub HMAC secret that push and tag events carry"),
		opt(&c.GitTimeout, "git-timeout", durationKind, 10*time.Minute, "upper bound on one git command, a first clone included", positive),
		opt(&c.GitMaxRepoSize, "git-max-repo-size", byteSizeKind, 2<<30, "most disk one repository's mirror may take", greaterThanZero[ByteSize]),
		opt(&c.Tokens, "tokens", stringKind, "", "tokens file (create it with `modgate token add`): when set, every download needs a token, except paths in --anonymous", fileExists),
		opt(&c.AdminOpen, "admin-open", boolKind, false, "without --tokens, let clients on any address use the admin API and the web UI (default: loopback clients only); put modgate behind something that authenticates before turning this on"),
		opt(&c.Anonymous, "anonymous", stringKind, "", "comma-separated module path patterns readable without a token when --tokens is set (\"*\": everything)", globList),
		opt(&c.Policy, "policy", stringKind, "", "download policy file (YAML: deny, allow, min-age, vulndb, waive); re-read when it changes", fileExists),
		opt(&c.PolicyDryRun, "policy-dry-run", boolKind, false, "evaluate the policy and log and audit \"would-deny\" without blocking anything"),
		opt(&c.AuditLog, "audit-log", stringKind, "", "audit log file, one JSON line per download and per denied request (\"-\": stdout)"),
		opt(&c.AuditMaxSize, "audit-max-size", byteSizeKind, 100<<20, "size at which the audit log is rotated", greaterThanZero[ByteSize]),
		opt(&c.AuditMaxFiles, "audit-max-files", intKind, 10, "rotated audit log files kept", atLeast(1)),
		opt(&c.Storage, "storage", stringKind, "disk", "storage backend: disk (--data-dir) or s3 (--s3-*; --data-dir stays each replica's scratch space and git mirrors)", oneOf("disk", "s3")),
		opt(&c.S3Endpoint, "s3-endpoint", stringKind, "", "S3 endpoint URL; its scheme decides TLS (default: AWS for --s3-region)", optionalHTTPURL),
		opt(&c.S3Bucket, "s3-bucket", stringKind, "", "S3 bucket (needed with --storage s3)"),
		opt(&c.S3Prefix, "s3-prefix", stringKind, "", "key prefix inside the bucket, e.g. modgate/"),
		opt(&c.S3Region, "s3-region", stringKind, "us-east-1", "S3 region"),
		opt(&c.S3PathStyle, "s3-path-style", boolKind, false, "path-style requests (endpoint/bucket/key) instead of virtual-host style; most self-hosted S3 servers need it"),
		opt(&c.Redis, "redis", stringKind, "", "Redis URL that replicas coordinate through: redis://[user:password@]host:port/db, rediss:// for TLS (Sentinel and Cluster: config file section redis-topology)", redisURL),
		opt(&c.MaxStorage, "max-storage", byteSizeKind, 0, "keep the store under this size (e.g. 50GiB) by removing least recently used versions every 5 minutes; 0: no limit", nonNegativeSize),
		opt(&c.Lease, "lease", durationKind, 30*time.Second, "with --redis: how long a replica's lock on a fetch lasts unless renewed (renewed every third of it while the fetch runs); a replica that dies mid-fetch delays the others by at most this long", atLeastDuration(time.Second)),
		opt(&c.LogLevel, "log-level", stringKind, "info", "log level: debug, info, warn or error", oneOf("debug", "info", "warn", "error")),
		opt(&c.LogFormat, "log-format", stringKind, "json", "log format: json or text", oneOf("json", "text")),
	}
}

// configKey is the option naming the config file. It is found before the
// other options are applied, and is not allowed inside a config file.
const configKey = "config"

// envPrefix starts the environment variable of every option.
const envPrefix = "MODGATE_"

// EnvName returns the environment variable for the option key:
// "MODGATE_" + upper(key) with '-' replaced by '_'.
func EnvName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// option is one row of the table: a name and help text bound to a Config
// field, with type-specific parsing, formatting and validation captured in
// closures so that the rest of the package is not generic.
type option struct {
	name     string
	help     string
	kindName string // shown in usage: string, duration, int, bool, list, size
	isBool   bool   // flag may be given without a value
	defText  string // formatted default value

	reset    func()             // store the default
	setText  func(string) error // parse a flag or env value
	setFile  func(any) error    // store a value decoded from YAML or TOML
	validate func() error       // check the current value
	get      func() string      // format the current value
}

// kind describes how to parse and print one Go type. Kinds are package
// variables: stringKind, durationKind, intKind, boolKind, stringListKind,
// byteSizeKind.
type kind[T any] struct {
	name   string
	parse  func(string) (T, error)
	format func(T) string
	// fromFile converts a value decoded from YAML or TOML (string, bool,
	// int, int64, uint64, float64, []any or map[string]any). Nil means:
	// convert scalars to text and use parse.
	fromFile func(any) (T, error)
}

// opt builds an option bound to *p. checks validate the final value (after
// all sources were applied); they should not mention the option name.
func opt[T any](p *T, name string, k kind[T], def T, help string, checks ...func(T) error) *option {
	o := &option{
		name:     name,
		help:     help,
		kindName: k.name,
		defText:  k.format(def),
	}
	_, o.isBool = any(def).(bool)
	o.reset = func() { *p = def }
	o.setText = func(s string) error {
		v, err := k.parse(s)
		if err != nil {
			return err
		}
		*p = v
		return nil
	}
	o.setFile = func(x any) error {
		var v T
		var err error
		if k.fromFile != nil {
			v, err = k.fromFile(x)
		} else {
			var s string
			if s, err = scalarText(x); err == nil {
				v, err = k.parse(s)
			}
		}
		if err != nil {
			return err
		}
		*p = v
		return nil
	}
	o.validate = func() error {
		for _, check := range checks {
			if err := check(*p); err != nil {
				return err
			}
		}
		return nil
	}
	o.get = func() string { return k.format(*p) }
	return o
}

// scalarText converts a scalar decoded from a config file to text.
func scalarText(x any) (string, error) {
	switch v := x.(type) {
	case string:
		return v, nil
	case bool, int, int64, uint64:
		return fmt.Sprint(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case []any:
		return "", errors.New("got a list, want a single value")
	case map[string]any:
		return "", errors.New("got a table, want a single value")
	default:
		return "", fmt.Errorf("unsupported value type %T", x)
	}
}

var stringKind = kind[string]{
	name:   "string",
	parse:  func(s string) (string, error) { return s, nil },
	format: func(s string) string { return s },
}

var durationKind = kind[time.Duration]{
	name: "duration",
	parse: func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (want e.g. 30s, 5m, 1h30m)", s)
		}
		return d, nil
	},
	format: formatDuration,
}

// formatDuration prints d without trailing zero units: 5m, not 5m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

var intKind = kind[int]{
	name: "int",
	parse: func(s string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("invalid integer %q", s)
		}
		return n, nil
	},
	format: strconv.Itoa,
}

var boolKind = kind[bool]{
	name: "bool",
	parse: func(s string) (bool, error) {
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return false, fmt.Errorf("invalid boolean %q (want true or false)", s)
		}
		return b, nil
	},
	format: strconv.FormatBool,
	fromFile: func(x any) (bool, error) {
		switch v := x.(type) {
		case bool:
			return v, nil
		case string:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return false, fmt.Errorf("invalid boolean %q (want true or false)", v)
			}
			return b, nil
		}
		return false, fmt.Errorf("invalid boolean %v (want true or false)", x)
	},
}

// stringListKind is a list of strings: comma-separated in flags and env
// (spaces around elements are trimmed, empty elements dropped), a list or a
// comma-separated string in config files.
var stringListKind = kind[[]string]{
	name:   "list",
	parse:  parseStringList,
	format: func(l []string) string { return strings.Join(l, ",") },
	fromFile: func(x any) ([]string, error) {
		items, ok := x.([]any)
		if !ok {
			s, err := scalarText(x)
			if err != nil {
				return nil, err
			}
			return parseStringList(s)
		}
		list := make([]string, 0, len(items))
		for i, item := range items {
			s, err := scalarText(item)
			if err != nil {
				return nil, fmt.Errorf("element %d: %v", i, err)
			}
			list = append(list, s)
		}
		return list, nil
	},
}

func parseStringList(s string) ([]string, error) {
	var list []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			list = append(list, e)
		}
	}
	return list, nil
}

// ByteSize is a number of bytes, written in config as a plain integer or with
// a unit: B, kB/KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers
// of 1024), e.g. "512MiB" or "1.5GB".
type ByteSize int64

var byteUnits = []struct {
	suffix string
	size   int64
}{
	{"tib", 1 << 40}, {"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
	{"tb", 1e12}, {"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3}, {"b", 1},
}

// ParseByteSize parses a size such as "1024", "64KiB" or "1.5GB".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.size
			break
		}
	}
	bad := fmt.Errorf("invalid byte size %q (want e.g. 1048576, 512MiB, 10GB)", s)
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 || n > math.MaxInt64/mult {
			return 0, bad
		}
		return ByteSize(n * mult), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsNaN(f) || f*float64(mult) >= math.MaxInt64 {
		return 0, bad
	}
	return ByteSize(math.Round(f * float64(mult))), nil
}

// String formats b with the largest binary unit that divides it exactly.
func (b ByteSize) String() string {
	for _, u := range byteUnits[:4] {
		if b != 0 && int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + strings.ToUpper(u.suffix[:1]) + u.suffix[1:2] + "B"
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

var byteSizeKind = kind[ByteSize]{
	name:   "size",
	parse:  ParseByteSize,
	format: ByteSize.String,
}

// Validators. They describe the problem without naming the option; the
// caller prefixes where the value came from.

func positive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be greater than 0, got %s", formatDuration(d))
	}
	return nil
}

// atLeast accepts integers of at least lo.
func atLeast(lo int) func(int) error {
	return func(n int) error {
		if n < lo {
			return fmt.Errorf("must be at least %d, got %d", lo, n)
		}
		return nil
	}
}

// greaterThanZero checks a count or a size.
func greaterThanZero[T int | ByteSize](n T) error {
	if n <= 0 {
		return fmt.Errorf("must be greater than 0, got %d", n)
	}
	return nil
}

func nonNegative(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("must not be negative, got %s", formatDuration(d))
	}
	return nil
}

// globList accepts a GONOSUMDB-style list: comma-separated path.Match
// patterns, each matching a path prefix.
func globList(s string) error {
	for _, g := range strings.Split(s, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("invalid pattern %q: %v", g, err)
		}
	}
	return nil
}

func notEmpty(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func oneOf(allowed ...string) func(string) error {
	return func(s string) error {
		for _, a := range allowed {
			if s == a {
				return nil
			}
		}
		return fmt.Errorf("invalid value %q (want one of %s)", s, strings.Join(allowed, ", "))
	}
}

// fileExists accepts "" (unset) or the path of an existing regular file.
func fileExists(path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return nil
}

func hostPort(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("invalid address %q (want host:port or :port): %v", s, err)
	}
	return nil
}

// proxyList accepts "" (derive from GOPROXY) or a GOPROXY-syntax list of
// http(s) URLs, "direct" and "off".
func proxyList(s string) error {
	if s == "" {
		return nil
	}
	_, err := proxylist.Parse(s)
	return err
}

// optionalHTTPURL accepts "" or an absolute http(s) URL.
func optionalHTTPURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an http or https URL")
	}
	if u.User != nil {
		return errors.New("credentials belong in MODGATE_S3_ACCESS_KEY and MODGATE_S3_SECRET_KEY, not in the URL")
	}
	return nil
}

// redisURL accepts "" or a redis:// or rediss:// URL. Its errors never
// quote the URL, which may hold a password.
func redisURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return errors.New("want redis://[user:password@]host:port/db or rediss://...")
	}
	return nil
}

// atLeastDuration accepts durations of at least min.
func atLeastDuration(min time.Duration) func(time.Duration) error {
	return func(d time.Duration) error {
		if d < min {
			return fmt.Errorf("must be at least %v, got %v", min, d)
		}
		return nil
	}
}

// nonNegativeSize accepts sizes of zero (off) or more.
func nonNegativeSize(v ByteSize) error {
	if v < 0 {
		return fmt.Errorf("must not be negative, got %v", v)
	}
	return nil
}
