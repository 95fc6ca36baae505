// Command chartcheck validates the manifests a Helm chart renders,
// offline: every document is decoded strictly into the Kubernetes type of
// its apiVersion and kind (an unknown field, a duplicated one or a value
// of the wrong type is an error, as with the API server's strict field
// validation), and the release as a whole gets the semantic checks a
// schema cannot do: selectors that match the pods, probes, resources,
// a non-root read-only container, a grace period above modgate's drain,
// budgets that do not block drains, and MODGATE_* variables that modgate
// knows.
//
// Usage:
//
//	helm template r deploy/helm/modgate -f values.yaml > out.yaml
//	modgate serve --help > help.txt
//	chartcheck [-options-help help.txt] out.yaml...
//
// It lives in its own module so that modgate's does not depend on the
// Kubernetes API packages.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// envOnly are the MODGATE_* variables modgate reads that are no option
// and so appear in no --help line: credentials, which must not be flags.
var envOnly = []string{"MODGATE_S3_ACCESS_KEY", "MODGATE_S3_SECRET_KEY"}

func main() {
	optionsHelp := flag.String("options-help", "", "file with the output of `modgate serve --help`: every MODGATE_* variable the manifests set must be named there")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: chartcheck [-options-help FILE] MANIFESTS.yaml... (\"-\": standard input)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var c Checker
	if *optionsHelp != "" {
		known, err := readKnownEnv(*optionsHelp)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chartcheck:", err)
			os.Exit(2)
		}
		c.KnownEnv = known
	}
	failed := false
	for _, name := range flag.Args() {
		if !checkFile(&c, name) {
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

// checkFile checks one rendered release and reports on it; it returns
// whether it passed.
func checkFile(c *Checker, name string) bool {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chartcheck:", err)
			return false
		}
		defer f.Close()
		r = f
	}
	objs, err := Decode(name, r)
	problems := c.Check(objs)
	if err != nil {
		problems = append([]string{err.Error()}, problems...)
	}
	if len(objs) == 0 && err == nil {
		problems = append(problems, "no Kubernetes object in it")
	}
	if len(problems) > 0 {
		fmt.Printf("FAIL %s: %d problem(s)\n", name, len(problems))
		for _, p := range problems {
			fmt.Println("  " + strings.ReplaceAll(p, "\n", "\n    "))
		}
		return false
	}
	fmt.Printf("ok   %s: %s\n", name, summary(objs))
	return true
}

// summary counts the objects by kind: "Deployment, Service, 2 Secret".
func summary(objs []*Object) string {
	count := map[string]int{}
	for _, o := range objs {
		count[o.GVK.Kind]++
	}
	kinds := make([]string, 0, len(count))
	for k := range count {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for i, k := range kinds {
		if n := count[k]; n > 1 {
			kinds[i] = fmt.Sprintf("%d %s", n, k)
		}
	}
	return strings.Join(kinds, ", ")
}

var envLine = regexp.MustCompile(`\benv (MODGATE_[A-Z0-9_]+)`)

// readKnownEnv collects the variables named in `modgate serve --help`
// ("env MODGATE_LIST_TTL, default 5m").
func readKnownEnv(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, m := range envLine.FindAllStringSubmatch(string(data), -1) {
		known[m[1]] = true
	}
	if len(known) == 0 {
		return nil, fmt.Errorf("%s names no MODGATE_* variable: is it the output of `modgate serve --help`?", path)
	}
	for _, name := range envOnly {
		known[name] = true
	}
	return known, nil
}
