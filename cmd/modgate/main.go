// Command modgate is a Go module proxy and gate for networks that cannot
// reach the public module ecosystem directly.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `modgate: a Go module proxy and gate

Usage:
  modgate serve [flags]     run the proxy (modgate serve --help lists the flags)
  modgate verify [flags]    check stored modules against the checksum database
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
	case "version", "--version", "-version":
		fmt.Println("modgate", version)
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
