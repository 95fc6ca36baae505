package scan

import (
	"fmt"
	"io"

	"github.com/modgate/modgate/internal/policy"
)

// ruleWords says what a blocking rule means for the version.
var ruleWords = map[string]string{
	"deny":      "denied",
	"allow":     "not allowed",
	"vuln":      "vulnerable",
	"min-age":   "too young",
	"retracted": "retracted",
}

// Report writes one line per violation, and per rule a result says was
// not applied, and returns the number of violations.
func Report(w io.Writer, results []policy.CheckResult) int {
	n := 0
	for _, r := range results {
		if !r.Allowed {
			n++
			what := ruleWords[r.Rule]
			if what == "" {
				what = "blocked"
			}
			fmt.Fprintf(w, "%s@%s: %s (%s): %s\n", r.Path, r.Version, what, r.Rule, r.Reason)
		}
		for _, note := range r.Notes {
			fmt.Fprintf(w, "%s@%s: note: %s\n", r.Path, r.Version, note)
		}
	}
	return n
}
