package doctor

import (
	"fmt"
	"strings"

	"golang.org/x/mod/module"
)

// covers reports whether the client pattern list (GOPRIVATE syntax)
// covers the server pattern: it matches the pattern read as a module path
// prefix. A glob matches itself this way ("*.corp" matches "*.corp"), so
// the same pattern on both sides counts; a narrower client pattern does
// not cover a wider server one, which is the safe answer.
func covers(list, pattern string) bool {
	return list != "" && module.MatchPrefixPatterns(list, pattern)
}

// private compares the server's private patterns with the client's
// GONOSUMDB and GONOPROXY.
func (p *prober) private(setup *setupInfo) {
	if setup == nil {
		p.add("private patterns", Skip, "the server's private patterns are unknown", "")
		return
	}
	if len(setup.private) == 0 {
		p.add("private patterns", OK, "the server has no private modules", "")
		return
	}
	s := p.settings
	var missing, bypass []string
	for _, pat := range setup.private {
		if s.sumdbName != "" && !covers(s.noSumDB, pat) {
			missing = append(missing, pat)
		}
		if covers(s.noProxy, pat) {
			bypass = append(bypass, pat)
		}
	}
	ok := true
	if len(missing) > 0 {
		ok = false
		p.add("private patterns", Fail,
			fmt.Sprintf("the server fetches %s from the company's git, but this machine's GONOSUMDB does not name them, so the go command asks the public checksum database for them and fails (404/410 Gone)", strings.Join(missing, ",")),
			"go env -w GONOSUMDB="+joinPatterns(s.noSumDB, missing))
	}
	if len(bypass) > 0 {
		ok = false
		var keep []string
		for pat := range strings.SplitSeq(s.noProxy, ",") {
			if pat = strings.TrimSpace(pat); pat != "" && !coveredByAny(setup.private, pat) {
				keep = append(keep, pat)
			}
		}
		fix := "go env -w GONOPROXY=" + orDefault(strings.Join(keep, ","), "none")
		p.add("private patterns", Warn,
			fmt.Sprintf("GONOPROXY (GOPRIVATE when unset) covers %s: the go command fetches those modules from git itself, bypassing modgate, which needs git and credentials on this machine", strings.Join(bypass, ",")),
			fix+"\n(\"none\" matches no module; GONOSUMDB keeps them away from the checksum database)")
	}
	if ok {
		p.add("private patterns", OK, fmt.Sprintf("%s: fetched through the proxy, kept away from the checksum database", strings.Join(setup.private, ",")), "")
	}
}

func coveredByAny(patterns []string, pat string) bool {
	for _, s := range patterns {
		if covers(s, pat) {
			return true
		}
	}
	return false
}

// joinPatterns appends add to the comma-separated list.
func joinPatterns(list string, add []string) string {
	if list = strings.Trim(list, ", "); list != "" {
		return list + "," + strings.Join(add, ",")
	}
	return strings.Join(add, ",")
}
