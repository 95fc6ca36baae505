// Package config holds modgate's configuration: one Config struct filled from
// defaults, a YAML or TOML config file, MODGATE_* environment variables and
// command-line flags, in increasing order of precedence, and validated before
// the server starts.
//
// All options are declared once, in the table in options.go; the flags, the
// environment variable names and the config file keys are derived from it.
// A config file key is the flag name without dashes in front ("list-ttl");
// the environment variable is MODGATE_ followed by the upper-cased name with
// '-' replaced by '_' ("MODGATE_LIST_TTL"). Settings with more structure
// are sections of the config file, declared in the table in section.go: a
// key holding a table, or a list of tables, of options of its own.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/modgate/modgate/internal/proxylist"
)

// Config is the configuration of the modgate server.
type Config struct {
	// ConfigFile is the config file that was loaded, or "".
	ConfigFile string
	// Listen is the address to serve HTTP on, in net.Listen syntax.
	Listen string
	// DataDir is the directory of the local-disk storage.
	DataDir string
	// Upstream is the upstream proxy list in GOPROXY syntax: http(s) URLs
	// (and, if configured explicitly, "direct" or "off") separated by ',' or
	// '|'. After Load it is never empty; scheme-less hosts have had https://
	// prepended, as the go command does.
	Upstream string
	// UpstreamDerived reports that Upstream was not configured but derived
	// from the GOPROXY environment variable or `go env GOPROXY`;
	// Source("upstream") says which.
	UpstreamDerived bool
	// TLSCert and TLSKey are the certificate and key files for HTTPS; both
	// are set or both are empty (serve plain HTTP).
	TLSCert string
	TLSKey  string
	// ListTTL is how long @v/list, @latest and branch/commit query answers
	// are fresh before a background refresh.
	ListTTL time.Duration
	// NegativeTTL is how long a not-found answer is cached; 0 disables
	// negative caching.
	NegativeTTL time.Duration
	// UpstreamRate is how many lookups per second each client address may
	// send upstream: cache misses and synchronous refreshes (a lookup that
	// finds what it asked for gives its token back); 0 disables the limit.
	UpstreamRate int
	// UpstreamBurst is how many such lookups a client may make at once.
	UpstreamBurst int
	// FetchTimeout bounds one upstream fetch.
	FetchTimeout time.Duration
	// UpstreamIdleTimeout aborts an upstream response that sends no byte
	// for this long, however long the whole fetch may take.
	UpstreamIdleTimeout time.Duration
	// ShutdownTimeout is how long shutdown waits for in-flight requests.
	ShutdownTimeout time.Duration
	// MinSendRate and SendTimeout drop clients that stop reading: each
	// write of n bytes must finish within max(SendTimeout, n/MinSendRate).
	MinSendRate ByteSize
	SendTimeout time.Duration
	// MaxConns caps open client connections (lowered at start to what the
	// file descriptor limit can hold).
	MaxConns int
	// SumDB is the checksum database in GOSUMDB syntax, or "off".
	SumDB string
	// NoSumDB lists module path patterns (GONOSUMDB syntax) that are never
	// verified and whose lookups are never sent out.
	NoSumDB string
	// Prefetch makes modgate fetch, when it serves a go.mod, the .info and
	// go.mod files of the modules it requires before clients ask for them
	// (package prefetch).
	Prefetch bool
	// Private lists the module path patterns (GOPRIVATE syntax) of the
	// company's own modules: fetched straight from their git servers,
	// never sent to an upstream nor looked up in the checksum database.
	Private string
	// Insecure lists the module path patterns (GOINSECURE syntax) whose
	// discovery and git traffic may use plain http.
	Insecure string
	// Netrc is the .netrc file with git hosts' credentials; empty means
	// the go command's default ($NETRC, else ~/.netrc).
	Netrc string
	// WebhookSecret enables POST /webhooks/git and authenticates its
	// events (a GitLab token, a Gitea or GitHub HMAC key).
	WebhookSecret string
	// GitTimeout bounds one git command (a first clone included).
	GitTimeout time.Duration
	// GitMaxRepoSize bounds the disk one repository's mirror may take.
	GitMaxRepoSize ByteSize
	// GitHosts are per-host git credentials (config file section
	// git-hosts); they win over the .netrc's.
	GitHosts []GitHost
	// GitRepos map module path prefixes to repository URLs, for servers
	// that answer no go-get meta tags (config file section git-repos).
	GitRepos []GitRepo
	// Tokens is the tokens file (modgate token add); set, every request
	// needs a token except for the Anonymous paths.
	Tokens string
	// Anonymous lists the module path patterns readable without a token.
	Anonymous string
	// AdminOpen lets clients on any address reach the admin API and the
	// web UI while tokens are off (by default only loopback clients may).
	AdminOpen bool
	// Policy is the download policy file (YAML).
	Policy string
	// PolicyDryRun evaluates the policy and records "would deny" without
	// blocking anything.
	PolicyDryRun bool
	// AuditLog is the audit log file, "-" for stdout, "" for none.
	AuditLog string
	// AuditMaxSize and AuditMaxFiles bound the audit log: it is rotated
	// at AuditMaxSize, keeping AuditMaxFiles old files.
	AuditMaxSize  ByteSize
	AuditMaxFiles int
	// Storage is the storage backend: "disk" (DataDir) or "s3".
	Storage string
	// S3Endpoint, S3Bucket, S3Prefix, S3Region and S3PathStyle locate the
	// bucket of --storage s3. The endpoint's scheme decides TLS.
	S3Endpoint  string
	S3Bucket    string
	S3Prefix    string
	S3Region    string
	S3PathStyle bool
	// S3AccessKey and S3SecretKey come from MODGATE_S3_ACCESS_KEY and
	// MODGATE_S3_SECRET_KEY only (never a flag, which others can read in
	// the process list); both empty: the standard AWS chain.
	S3AccessKey string
	S3SecretKey string
	// Redis is the URL of the Redis that replicas coordinate through
	// (redis://[user:password@]host:port/db, rediss:// for TLS); empty:
	// everything in-process.
	Redis string
	// RedisTopology holds Sentinel and Cluster settings (config file
	// section redis-topology).
	RedisTopology RedisTopology
	// MaxStorage keeps the store under this size by removing least
	// recently used versions in the background; 0: no limit.
	MaxStorage ByteSize
	// Lease is how long a replica's lock on a fetch lasts without being
	// renewed: a replica that dies mid-fetch delays the others by at most
	// this long.
	Lease time.Duration
	// LogLevel is one of debug, info, warn, error.
	LogLevel string
	// LogFormat is json or text.
	LogFormat string

	// sources maps option names to where their value came from.
	sources map[string]string
}

// Default returns a Config holding the default of every option. Upstream is
// left empty (Load derives it from GOPROXY).
func Default() *Config {
	c := &Config{sources: map[string]string{}}
	for _, o := range c.options() {
		o.reset()
		c.sources[o.name] = "default " + o.name
	}
	c.resetSections(c.sections())
	return c
}

// resetSections stores the defaults of secs.
func (c *Config) resetSections(secs []*section) {
	for _, s := range secs {
		s.reset()
		c.setSource(s.name, "default "+s.name)
	}
}

// Source describes where the value of option name came from, in the form
// used by error messages: "default list-ttl", `config file m.yaml: list-ttl`,
// "env MODGATE_LIST_TTL" or "flag --list-ttl"; for a derived upstream it is
// "env GOPROXY" or "go env GOPROXY". For a Config not made by Load or
// Default it is the option name.
func (c *Config) Source(name string) string {
	if s, ok := c.sources[name]; ok {
		return s
	}
	return name
}

func (c *Config) setSource(name, where string) {
	if c.sources == nil {
		c.sources = map[string]string{}
	}
	c.sources[name] = where
}

// helpOutput is where Load prints the usage for --help.
var helpOutput io.Writer = os.Stderr

// goEnv runs `go env`; a variable so tests can stub it.
var goEnv = GoEnv

// Load builds the configuration from args (the serve subcommand's arguments,
// without the program and subcommand names) and the environment read through
// getenv (os.Getenv if nil). The config file is named by --config in args or
// else by MODGATE_CONFIG. Values from the file are overridden by environment
// variables, which are overridden by flags. An empty environment variable
// counts as unset.
//
// The result is validated. If Upstream ends up empty it is derived with
// DefaultUpstream(getenv, GoEnv) and UpstreamDerived is set.
//
// With --help (or -h) Load prints Usage to standard error and returns
// flag.ErrHelp.
//
// getenv cannot list the environment, so Load does not notice misspelled
// MODGATE_* variables; LoadEnviron does.
func Load(args []string, getenv func(string) string) (*Config, error) {
	c := Default()
	return c.load(args, getenv, c.sections())
}

// load is Load into c, a Default, with the section table secs (tests add
// sections of their own).
func (c *Config) load(args []string, getenv func(string) string, secs []*section) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c.resetSections(secs)
	opts := c.options()
	byName := make(map[string]*option, len(opts))
	for _, o := range opts {
		byName[o.name] = o
	}

	flags, err := parseFlags(args, opts)
	if err != nil {
		return nil, err
	}

	// The config file: the last --config flag, else MODGATE_CONFIG.
	path := getenv(EnvName(configKey))
	for _, f := range flags {
		if f.o.name == configKey {
			path = f.value
		}
	}
	if path != "" {
		if err := c.loadFile(path, byName, secs); err != nil {
			return nil, err
		}
	}

	for _, o := range opts {
		env := EnvName(o.name)
		v := getenv(env)
		if v == "" {
			continue
		}
		where := "env " + env
		if err := o.setText(v); err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		c.setSource(o.name, where)
	}

	for _, f := range flags {
		where := "flag --" + f.o.name
		if err := f.o.setText(f.value); err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		c.setSource(f.o.name, where)
	}

	// Secrets that only the environment may carry.
	c.S3AccessKey, c.S3SecretKey = getenv(EnvS3AccessKey), getenv(EnvS3SecretKey)

	if err := c.validate(secs); err != nil {
		return nil, err
	}

	if c.Upstream == "" {
		up, err := DefaultUpstream(getenv, goEnv)
		if err != nil {
			return nil, err
		}
		c.Upstream, c.UpstreamDerived = up, true
		if getenv("GOPROXY") != "" {
			c.setSource("upstream", "env GOPROXY")
		} else {
			c.setSource("upstream", "go env GOPROXY")
		}
	} else {
		// Validate accepted it, so this only normalizes.
		entries, err := proxylist.Parse(c.Upstream)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", c.Source("upstream"), err)
		}
		c.Upstream = proxylist.Format(entries)
	}
	return c, nil
}

// Variables read from the environment only: secrets, and the client
// side's token (`modgate goauth`), which may be set where a server runs.
const (
	EnvS3AccessKey = "MODGATE_S3_ACCESS_KEY"
	EnvS3SecretKey = "MODGATE_S3_SECRET_KEY"
	envToken       = "MODGATE_TOKEN"
)

var envOnly = []string{EnvS3AccessKey, EnvS3SecretKey, envToken}

// LoadEnviron is Load with the environment given as "KEY=value" strings (as
// from os.Environ). Unlike Load it also rejects MODGATE_* variables that do
// not name an option.
func LoadEnviron(args, environ []string) (*Config, error) {
	known := map[string]bool{}
	var names []string // option names in table order, for the hint
	for _, o := range new(Config).options() {
		known[EnvName(o.name)] = true
		names = append(names, o.name)
	}
	for _, k := range envOnly {
		known[k] = true
	}
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, envPrefix) && !known[k] {
			// Compared without the prefix, which every candidate shares.
			hint := ""
			if s := suggest(strings.TrimPrefix(k, envPrefix), names); s != "" {
				hint = "did you mean " + EnvName(s) + "? "
			}
			return nil, fmt.Errorf("env %s: unknown variable (no such modgate option; %ssee --help)", k, hint)
		}
		env[k] = v
	}
	return Load(args, func(k string) string { return env[k] })
}

// Validate checks every option's value and the relations between options.
// Errors name where the offending value came from.
func (c *Config) Validate() error {
	return c.validate(c.sections())
}

func (c *Config) validate(secs []*section) error {
	var errs []error
	for _, o := range c.options() {
		if err := o.validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", c.Source(o.name), err))
		}
	}
	for _, s := range secs {
		if err := s.validate(); err != nil {
			// Source is "config file m.yaml: hosts" or "default hosts":
			// what comes before the name says where.
			where := strings.TrimSuffix(c.Source(s.name), s.name)
			errs = append(errs, sectionError(where, s.name, err))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		set, unset := "tls-cert", "tls-key"
		if c.TLSCert == "" {
			set, unset = unset, set
		}
		errs = append(errs, fmt.Errorf("%s: --%s and --%s must be set together, but %s is not set",
			c.Source(set), set, unset, unset))
	}
	if c.Storage == "s3" && c.S3Bucket == "" {
		errs = append(errs, fmt.Errorf("%s: --storage s3 needs --s3-bucket", c.Source("storage")))
	}
	if (c.S3AccessKey == "") != (c.S3SecretKey == "") {
		errs = append(errs, fmt.Errorf("env %s and %s must be set together (or neither, for the standard AWS credential chain)", EnvS3AccessKey, EnvS3SecretKey))
	}
	if (len(c.RedisTopology.SentinelAddrs) > 0 || len(c.RedisTopology.ClusterAddrs) > 0) && c.Redis == "" {
		errs = append(errs, fmt.Errorf("%s: redis-topology needs --redis for the user, password, db and TLS (redis://host/db is enough)", c.Source("redis-topology")))
	}
	return errors.Join(errs...)
}

// flagSetting is one flag from the command line, applied after the config
// file and the environment.
type flagSetting struct {
	o     *option
	value string
}

// recorder is the flag.Value of every option: it only records the setting,
// so that the file named by --config can be applied before the flags.
type recorder struct {
	o    *option
	list *[]flagSetting
}

func (r recorder) String() string { return "" }

func (r recorder) Set(s string) error {
	*r.list = append(*r.list, flagSetting{r.o, s})
	return nil
}

func (r recorder) IsBoolFlag() bool { return r.o.isBool }

// newFlagSet returns the flag set for opts, recording into list.
func newFlagSet(opts []*option, list *[]flagSetting) *flag.FlagSet {
	fs := flag.NewFlagSet("modgate serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, o := range opts {
		fs.Var(recorder{o, list}, o.name, o.help)
	}
	return fs
}

func parseFlags(args []string, opts []*option) ([]flagSetting, error) {
	var list []flagSetting
	fs := newFlagSet(opts, &list)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			Usage(helpOutput)
			return nil, flag.ErrHelp
		}
		return nil, flagError(err, opts)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	return list, nil
}

// flagError rewrites the flag package's parse errors into this package's
// "flag --name: problem" form; an unknown flag gets the closest option as a
// hint. (The flag package's own message and usage dump are discarded: see
// newFlagSet.)
func flagError(err error, opts []*option) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		hint := ""
		if s := suggest(name, optionNames(opts, "")); s != "" {
			hint = "did you mean --" + s + "? "
		}
		return fmt.Errorf("flag --%s: unknown flag (%ssee --help)", name, hint)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return fmt.Errorf("flag --%s: missing value", strings.TrimLeft(name, "-"))
	}
	return fmt.Errorf("flags: %v", err)
}

// Usage writes the help text: every option with its type, environment
// variable and default, and the config file's sections with their keys.
func Usage(w io.Writer) {
	usage(w, new(Config).sections())
}

func usage(w io.Writer, secs []*section) {
	var b strings.Builder
	b.WriteString(`Usage: modgate serve [flags]

Every option can be set by a flag, by an environment variable, or by a key of
the same name as the flag in the YAML or TOML file named by --config.
Flags override the environment, which overrides the file, which overrides
the defaults.

Flags:
`)
	for _, o := range new(Config).options() {
		fmt.Fprintf(&b, "  --%s", o.name)
		if !o.isBool {
			fmt.Fprintf(&b, " %s", o.kindName)
		}
		fmt.Fprintf(&b, "\n    \t%s\n    \tenv %s%s\n", o.help, EnvName(o.name), o.defaultText())
	}
	if len(secs) > 0 {
		b.WriteString("\nConfig file sections (only in the file named by --config):\n")
	}
	for _, s := range secs {
		fmt.Fprintf(&b, "  %s: %s\n    \t%s\n", s.name, s.kind, s.help)
		for _, o := range s.keys() {
			fmt.Fprintf(&b, "    %s.%s %s\n      \t%s%s\n", s.name, o.name, o.kindName, o.help, o.defaultText())
		}
	}
	io.WriteString(w, b.String())
}

// defaultText is ", default X" for usage, or "" when there is no default.
func (o *option) defaultText() string {
	switch {
	case o.defText == "":
		return ""
	case o.kindName == "string":
		return fmt.Sprintf(", default %q", o.defText)
	}
	return ", default " + o.defText
}

// suggest returns the name in names closest to the unknown name s, for a
// "did you mean" hint, or "" if none is close enough to be a likely typo.
// Case and '_' versus '-' do not count, so that env-style spellings in a
// file or a flag (DATA_DIR, list_ttl) find their option. A match needs at
// most 2 edits, and at most one edit per three letters of s: between short
// names everything is "close" and the hint would be noise. Ties go to the
// earlier name, so that the message is the same from run to run.
func suggest(s string, names []string) string {
	norm := func(x string) string { return strings.ToLower(strings.ReplaceAll(x, "_", "-")) }
	r := []rune(norm(s))
	limit := min(2, len(r)/3)
	best, bestD := "", limit+1
	for _, n := range names {
		n2 := []rune(norm(n))
		// The distance is at least the difference in length: skip the
		// quadratic work when that alone is too far (s can be a whole
		// line of a config file).
		if abs(len(r)-len(n2)) > limit {
			continue
		}
		if d := editDistance(string(r), string(n2)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// editDistance is the optimal string alignment distance between a and b
// (Damerau-Levenshtein restricted to edits that do not overlap): the number
// of rune insertions, deletions, substitutions and transpositions of two
// adjacent runes needed to turn a into b. A transposition ("lsit" for
// "list") is the most common typo, so it counts as one edit, not two.
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// d[i][j] is the distance between s[:i] and t[:j].
	d := make([][]int, len(s)+1)
	for i := range d {
		d[i] = make([]int, len(t)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(s); i++ {
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(s)][len(t)]
}

// optionNames returns the names of opts in table order, leaving out except.
func optionNames(opts []*option, except string) []string {
	names := make([]string, 0, len(opts))
	for _, o := range opts {
		if o.name != except {
			names = append(names, o.name)
		}
	}
	return names
}
