// Command modgate is a Go module proxy and gate for networks that cannot
// reach the public module ecosystem directly.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
)

// version, when set at build time with -ldflags "-X main.version=...",
// is the version modgate reports; else modgateVersion reads the build info.
var version string

// modgateVersion is the version to report: the one set with -ldflags,
// else the one the go command recorded (see buildVersion).
func modgateVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return buildVersion(bi)
}

// buildVersion names a build from its build info: the main module's version
// (go install m@v, or a build in a tagged checkout), else the commit it was
// built from (12 hex digits, "-dirty" with uncommitted changes), else
// "devel".
func buildVersion(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

const usage = `modgate: a Go module proxy and gate

Usage:
  modgate serve [flags]     run the proxy (modgate serve --help lists the flags)
  modgate verify [flags]    check stored modules against the checksum database
  modgate token add|list|revoke --tokens FILE ...
                            manage the client tokens of --tokens FILE
  modgate goauth --url URL  a GOAUTH command giving the go command a token
  modgate env --proxy URL   print the go command's settings for a client of that modgate
  modgate doctor            check this machine's go settings and its way to the proxy
  modgate explain [-- CMD]  explain the go command's errors (stdin, or the output of CMD)
  modgate scan [DIR]        check a module's build list against a policy (--server URL or
                            --policy FILE); --sbom FILE writes a CycloneDX SBOM
  modgate gc --data-dir D --max-size SIZE [--dry-run]
                            remove least recently used versions until the store fits SIZE
  modgate bundle export|import
                            carry modules and their checksum database proofs into a network
                            without internet access (modgate bundle help)
  modgate version           print the version

Run "modgate serve" with no flags to start with local-disk storage in
./modgate-data on :8080, fetching from the go command's own GOPROXY.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:])
	case "verify":
		err = verify(args[1:])
	case "token":
		err = tokenCmd(args[1:], os.Stdout, os.Stderr)
	case "goauth":
		err = goauthCmd(args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	case "env":
		err = envCmd(args[1:], os.Stdout, os.Stderr)
	case "doctor":
		err = runDoctor(args[1:])
	case "gc":
		err = gcCmd(args[1:], os.Stdout, os.Stderr)
	case "bundle":
		err = bundleCmd(args[1:], os.Stdout, os.Stderr, os.Getenv)
	case "scan":
		return scanCmd(args[1:], os.Stdout, os.Stderr, os.Getenv)
	case "explain":
		return explainCmd(args[1:], os.Stdin, os.Stdout, os.Stderr)
	case "version", "--version", "-version":
		fmt.Println("modgate", modgateVersion())
	case "help", "--help", "-h", "-help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "modgate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "modgate:", err)
		return 1
	}
	return 0
}
