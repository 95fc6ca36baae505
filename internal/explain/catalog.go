package explain

import "regexp"

// Default returns the catalog: modgate's own refusals first (they come as
// the "server response" under a go command line and say more than its
// status), then the go command's errors from the most to the least
// specific. The go command's texts are those of cmd/go and net/http; the
// tests capture them from the real go command.
func Default() []Rule {
	rules := make([]Rule, len(catalog))
	copy(rules, catalog)
	return rules
}

var (
	byModule  = []string{"module"}
	byModVer  = []string{"module", "version"}
	byHost    = []string{"host"}
	byNothing []string
)

var catalog = []Rule{
	// ---- modgate's own answers ----
	{
		ID: "policy-deny", Title: "Denied by modgate's download policy", Subject: byModVer,
		Match: re(`blocked by policy: deny: (?P<reason>[^\n]*)`),
		Cause: `modgate's download policy (--policy) has a deny rule for {modver}: "{reason}".`,
		Fix:   `Use a version the policy allows: "go list -m -versions {module}" lists them, then "go get {module}@<version>". If this version is really needed, ask modgate's operator to change the deny rule.`,
	},
	{
		ID: "policy-vuln", Title: "Blocked: known vulnerability", Subject: byModVer,
		Match: re(`blocked by policy: vuln: (?P<advisory>[^\s(]+)[^\n]*?\(fixed in (?P<fixed>[^)\s]+)\)`),
		Cause: `{modver} has the known vulnerability {advisory}; modgate's policy blocks vulnerable versions.`,
		Fix:   `Upgrade to the fixed version: "go get {module}@{fixed}", then "go mod tidy". If the vulnerable code is not reachable, the operator can waive {advisory} in the policy's "waive" list.`,
	},
	{
		ID: "policy-vuln", Title: "Blocked: known vulnerability", Subject: byModVer,
		Match: re(`blocked by policy: vuln: (?P<advisory>[^\s(;]+)`),
		Cause: `{modver} has the known vulnerability {advisory}, with no fixed version; modgate's policy blocks vulnerable versions.`,
		Fix:   `Replace the dependency, or, if the vulnerable code is not reachable, ask modgate's operator to waive {advisory} in the policy's "waive" list.`,
	},
	{
		ID: "policy-min-age", Title: "Blocked: version too new", Subject: byModVer,
		Match: re(`blocked by policy: min-age: (?P<reason>[^\n]*)`),
		Cause: `{modver} is younger than the minimum age modgate's policy requires before a release may be used ({reason}).`,
		Fix:   `Use an older version ("go list -m -versions {module}" lists the allowed ones; "go get {module}@latest" picks the newest allowed), or wait until it is old enough. The operator can exempt the module with a min-age rule of 0s.`,
	},
	{
		ID: "policy-retracted", Title: "Blocked: retracted version", Subject: byModVer,
		Match: re(`blocked by policy: retracted: (?P<reason>[^\n]*)`),
		Cause: `The author of {module} retracted {version} ({reason}), and modgate's policy refuses retracted versions.`,
		Fix:   `Move to a version that is not retracted: "go get {module}@latest", or pick one from "go list -m -versions {module}".`,
	},
	{
		ID: "policy-allow", Title: "Not on modgate's allow list", Subject: byModule,
		Match: re(`blocked by policy: allow: (?P<reason>[^\n]*)`),
		Cause: `modgate's policy has an allow list and {module} is not on it ({reason}).`,
		Fix:   `Ask modgate's operator to add {module} to the policy's "allow" list, or use an allowed module instead.`,
	},
	{
		ID: "policy", Title: "Blocked by modgate's policy", Subject: byModVer,
		Match: re(`blocked by policy: (?P<reason>[^\n]*)`),
		Cause: `modgate's download policy refuses {modver}: {reason}.`,
		Fix:   `Use a version the policy allows ("go list -m -versions {module}"), or ask modgate's operator about the rule.`,
	},
	{
		ID: "token-forbidden", Title: "Token may not read this module", Subject: byModule,
		Match: re(`token (?P<token>\S+) may not read (?P<module>\S+)`),
		Cause: `The modgate token "{token}" is limited to module path patterns that do not include {module}.`,
		Fix:   `Ask modgate's operator for a token whose patterns allow it (modgate token add --name <name> --allow '{module}'), then give it to the go command through GOAUTH or .netrc.`,
	},
	{
		ID: "unauthorized", Title: "Authentication required", Subject: byHost,
		Match: re(`a token is needed; set GOAUTH or \.netrc|\b401 Unauthorized`),
		Cause: `{host} requires a token (modgate --tokens), and the go command sent none or one the server does not know.`,
		Fix:   `Give the go command the token: go env -w GOAUTH='modgate goauth --url https://{host} --token-file ~/.config/modgate/token' (or MODGATE_TOKEN in CI), or a line "machine {host} login any password <token>" in ~/.netrc (chmod 600). The go command sends credentials over https only.`,
	},
	{
		ID: "modgate-checksum", Title: "modgate refused a download failing the checksum database", Subject: byModVer,
		Match: re(`modgate: [^\n]*SECURITY ERROR: checksum mismatch`),
		Cause: `The copy of {modver} modgate got from its upstream does not match the checksum database, so modgate refused it: the origin changed the bits, or something in between tampered with them.`,
		Fix:   `Do not work around it (no GOSUMDB=off, GONOSUMDB or GOFLAGS=-insecure). Report it to modgate's operator and your security team with this line.`,
	},
	{
		ID: "modgate-sumdb-misbehaving", Title: "Checksum database misbehaving", Subject: byNothing,
		Match: re(`SECURITY ERROR: checksum database \S+ is misbehaving`),
		Cause: `modgate saw the checksum database contradict its own earlier answers and stopped verification.`,
		Fix:   `Nothing to change on your side: report it to modgate's operator, who must investigate before downloads resume.`,
	},
	{
		ID: "modgate-git-auth", Title: "modgate's git credentials rejected", Subject: byHost,
		Match: re(`(?P<host>[-A-Za-z0-9_.]+(?::\d+)?): authentication failed \(check the credentials`),
		Cause: `modgate fetches private modules from {host} with its own credentials, and {host} rejected them.`,
		Fix:   `Ask modgate's operator to fix the credentials for {host} in modgate's --netrc file (or its ssh key); clients need no git credentials.`,
	},
	{
		ID: "modgate-upstream-timeout", Title: "modgate's upstream timed out", Subject: byModule,
		Match: re(`modgate: [^\n]*upstream timed out`),
		Cause: `modgate did not have {modver} stored and its upstream (a proxy or git server) did not answer in time.`,
		Fix:   `Try again in a moment. If it persists, modgate's operator should check its --upstream, the egress proxy (HTTPS_PROXY) and the network.`,
	},
	{
		ID: "modgate-upstream-failed", Title: "modgate's upstream failed", Subject: byModule,
		Match: re(`modgate: [^\n]*upstream failed`),
		Cause: `modgate did not have {modver} stored and fetching it from its upstream failed (the reason is in the line).`,
		Fix:   `Try again later. If it persists, modgate's operator should check its --upstream and network, or, for a private module, its git credentials (--netrc).`,
	},
	{
		ID: "modgate-rate-limit", Title: "Too many lookups", Subject: byNothing,
		Match: re(`too many lookups of modules not stored in modgate`),
		Cause: `This client asked modgate for more modules it had not stored than its per-client limit allows.`,
		Fix:   `Retry in a few seconds (the go command does not retry by itself). If a large build needs it, ask the operator to raise --upstream-rate.`,
	},
	{
		ID: "modgate-internal", Title: "modgate internal error", Subject: byNothing,
		Match: re(`internal error in modgate \(request id (?P<request>[^)\s]+)\)`),
		Cause: `modgate failed on this request (request id {request}).`,
		Fix:   `Report the request id {request} to modgate's operator, who finds the cause in its log.`,
	},

	// ---- checksums ----
	{
		ID: "checksum-mismatch", Title: "Checksum mismatch", Subject: byModule,
		Match: re(`checksum mismatch|SECURITY ERROR`),
		Cause: `The downloaded {modver} does not match the hash in go.sum or in the checksum database: the bits changed at the origin, or a download was tampered with or corrupted.`,
		Fix:   `Do not disable verification (no GOSUMDB=off, GONOSUMDB or GOFLAGS=-insecure for it). Clear the module cache with "go clean -modcache" and try again; if it persists, report it to the module's owner and your security team. Edit go.sum only if you know why the hash changed.`,
	},
	{
		ID: "sumdb-unknown", Title: "Not in the checksum database", Subject: byModule,
		Match: re(`(?:verifying (?:module|go\.mod):|/sumdb/|/lookup/)[^\n]*\b(?:404|410)\b`),
		Cause: `The checksum database has no record of {modver}: it is a private module (the public database never sees those), or a version that was never published.`,
		Fix:   `For a company module, tell the go command not to look it up: go env -w GONOSUMDB='{root}' (or GOPRIVATE='{root}' when it should also bypass the proxy); modgate serves it from git with --private '{root}' on the server. Otherwise check the version.`,
	},
	{
		ID: "missing-go-sum", Title: "Missing go.sum entry", Subject: byModule,
		Match: re(`missing go\.sum entry (?:needed to verify package|for module providing package) (?P<module>[^\s;()]+)`),
		Cause: `go.sum has no hash for the module that provides package {module}; with the default -mod=readonly the go command does not add it by itself.`,
		Fix:   `Run "go mod tidy" (it adds every missing hash) or "go get {module}", and commit go.sum.`,
	},
	{
		ID: "missing-go-sum", Title: "Missing go.sum entry", Subject: byModule,
		Match: re(`missing go\.sum entry`),
		Cause: `go.sum has no hash for {module}, which the build needs; with the default -mod=readonly the go command does not add it by itself.`,
		Fix:   `Run "go mod download {module}" (or "go mod tidy" for the whole module) and commit go.sum.`,
	},
	{
		ID: "declares-path", Title: "Module declares another path", Subject: byModule,
		Match: re(`(?s)module declares its path as: (?P<declared>\S+)\s+but was required as: (?P<required>\S+)`),
		Cause: `The go.mod of {required} (at {version}) says "module {declared}": the module was renamed or moved, or the require or replace points at the wrong repository.`,
		Fix:   `Require it under its declared path: replace {required} with {declared} in imports and go.mod ("go get {declared}@<version>"), or fix the replace directive that points {required} at this code.`,
	},

	// ---- versions and toolchains ----
	{
		ID: "toolchain-download", Title: "Go toolchain not available", Subject: byNothing,
		Match: re(`golang\.org/toolchain@(?P<version>[^\s:]+):[^\n]*(?:403|404|410)|toolchain not available`),
		Cause: `The go command tried to download another Go toolchain (because of a "go" or "toolchain" line in go.mod, or GOTOOLCHAIN) and the proxy does not have that release.`,
		Fix:   `Check the go/toolchain version in go.mod is a real release; make sure GOPROXY reaches golang.org/toolchain (modgate fetches it like any module), or install that Go version and set GOTOOLCHAIN=local.`,
	},
	{
		ID: "toolchain-required", Title: "Newer Go required", Subject: byNothing,
		Match: re(`requires go >= (?P<need>[^\s;)]+)(?: \(running go (?P<running>[^\s;)]+)(?:; GOTOOLCHAIN=(?P<gotoolchain>[^\s)]+))?)?`),
		Cause: `go.mod (or a dependency) needs Go {need}, newer than the installed one, and GOTOOLCHAIN does not allow switching.`,
		Fix:   `Let the go command fetch the toolchain through the proxy: go env -w GOTOOLCHAIN=auto (GOTOOLCHAIN=local forbids it), or install Go {need} or newer.`,
	},
	{
		ID: "goproxy-off", Title: "GOPROXY=off", Subject: byNothing,
		Match: re(`disabled by GOPROXY=off`),
		Cause: `GOPROXY is off, so the go command may not download anything; {modver} is not in the module cache.`,
		Fix:   `Point GOPROXY at modgate: go env -w GOPROXY=https://<modgate host> (see "modgate env"), or "go env -u GOPROXY" if off was set by mistake. To build offline, vendor the dependencies first ("go mod vendor").`,
	},
	{
		ID: "invalid-version", Title: "Unknown version", Subject: byModVer,
		Match: re(`invalid version|unknown revision|no matching versions for query`),
		Cause: `{module} has no version {version}: the tag, branch or commit does not exist (or is not pushed), or the version is not in canonical form (vMAJOR.MINOR.PATCH).`,
		Fix:   `List the versions there are with "go list -m -versions {module}" and use one of them; for a private module, check the tag was pushed to the git server.`,
	},

	// ---- reaching the server ----
	{
		ID: "x509-unknown-authority", Title: "TLS certificate not trusted", Subject: byHost,
		Match: re(`x509: certificate signed by unknown authority`),
		Cause: `The certificate {host} presented is signed by a CA this machine does not trust: an internal CA (modgate's own certificate) or a TLS-intercepting corporate proxy.`,
		Fix:   `Trust that CA: add its certificate to the system store (Debian/Ubuntu: copy it to /usr/local/share/ca-certificates/ and run update-ca-certificates), or export SSL_CERT_FILE=/path/to/bundle.pem with a bundle that contains it. Do not use GOINSECURE or GOFLAGS=-insecure for this.`,
	},
	{
		ID: "x509-name-mismatch", Title: "TLS certificate for another name", Subject: byHost,
		Match: re(`x509: certificate is valid for [^\n]*?, not (?P<host>[^\s"]+)|x509: cannot validate certificate for (?P<host>[^\s"]+) because`),
		Cause: `The certificate of the server does not name {host}, the host GOPROXY uses.`,
		Fix:   `Use the host name the certificate was issued for in GOPROXY (go env -w GOPROXY=https://<that name>), or have the server's certificate reissued with {host} in it.`,
	},
	{
		ID: "x509-expired", Title: "TLS certificate expired or not yet valid", Subject: byHost,
		Match: re(`x509: certificate has expired or is not yet valid`),
		Cause: `The certificate of {host} is outside its validity period, or this machine's clock is wrong.`,
		Fix:   `Check the clock ("date"; enable NTP). If the clock is right, the server's operator must renew the certificate.`,
	},
	{
		ID: "dns", Title: "Host name not found", Subject: byHost,
		Match: re(`lookup (?P<host>[^\s:]+)[^\n]*(?:no such host|server misbehaving|Temporary failure in name resolution)|no such host`),
		Cause: `DNS cannot resolve {host}: a typo in GOPROXY, or an outside host that this network does not resolve (behind a firewall only modgate reaches out).`,
		Fix:   `Check "go env GOPROXY": it should name modgate (go env -w GOPROXY=https://<modgate host>), with no "direct" entry for public modules. If {host} is modgate itself, check its name with your DNS.`,
	},
	{
		ID: "tls-handshake-timeout", Title: "TLS handshake timeout", Subject: byHost,
		Match: re(`TLS handshake timeout`),
		Cause: `{host} accepted the connection but did not complete TLS in time: a firewall or an egress proxy dropping the traffic, or an overloaded server.`,
		Fix:   `Point GOPROXY at modgate (go env -w GOPROXY=https://<modgate host>). If outside hosts must go through an egress proxy, export HTTPS_PROXY=http://proxy:port (and NO_PROXY for internal hosts).`,
	},
	{
		ID: "unreachable", Title: "Server not reachable", Subject: byHost,
		Match: re(`(?P<reason>connection refused|i/o timeout|no route to host|network is unreachable|connection reset by peer|Client\.Timeout exceeded)`),
		Cause: `The go command could not reach {host} ({reason}): nothing listens there, or a firewall blocks the way out.`,
		Fix:   `Check "go env GOPROXY" names a running modgate with the right port (go env -w GOPROXY=https://<modgate host>). If {host} is an outside host, this network does not reach it directly: use modgate, or export HTTPS_PROXY=http://proxy:port for an egress proxy.`,
	},
	{
		ID: "terminal-prompts", Title: "Git needs credentials", Subject: byHost,
		Match: re(`terminal prompts disabled|could not read Username`),
		Cause: `The go command fetched {module} with git directly (GOPRIVATE/GONOPROXY, or "direct"), and git needs credentials it may not ask for.`,
		Fix:   `Let modgate fetch it instead: list the module in modgate's --private on the server, keep it out of GONOPROXY/GOPRIVATE, and set only GONOSUMDB='{root}' on the client. Or give git credentials: a .netrc line "machine {host} login <user> password <token>", GOAUTH=git, or a git "insteadOf" rule to ssh.`,
	},
	{
		ID: "forbidden", Title: "Forbidden", Subject: byHost,
		Match: re(`\b403 Forbidden`),
		Cause: `{host} refused {modver}: a token not allowed to read it, or a download policy.`,
		Fix:   `Read the "server response" line under the error. For modgate: ask its operator for a token that allows the module, or use a version the policy allows.`,
	},
	{
		ID: "not-found", Title: "Module not found", Subject: byModule,
		Match: re(`cannot find module providing package|reading [^\n]*: (?:404|410)\b|\bnot found\b`),
		Cause: `No proxy in GOPROXY has {module}: the path is mistyped, or it is a private module the proxy cannot see.`,
		Fix:   `Check the module path and version. If {module} is a company module, modgate must fetch it from git (--private '{root}' on the server), and the go command must not send it to the public checksum database: go env -w GONOSUMDB='{root}'.`,
	},
}

func re(s string) *regexp.Regexp { return regexp.MustCompile(s) }
