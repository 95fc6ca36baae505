// Package gitserver is a test fixture: it builds git repositories and
// serves them the way an internal git server does, with the real
// `git http-backend`, on 127.0.0.1. Only tests import it.
//
// # Repositories
//
// NewRepo(t, "team/repo") creates a working repository (branch main, no
// commit yet) in t.TempDir(), to be served as "team/repo.git". Every git
// command it runs sees no global or system configuration
// (GIT_CONFIG_GLOBAL=/dev/null, GIT_CONFIG_NOSYSTEM=1) and fixed author
// and committer identities and dates: the first commit is dated BaseTime,
// each later one an hour after the previous one. The same steps therefore
// give the same commit hashes on every machine and every run.
//
// Methods, all failing the test on error: Write, Symlink and Remove change
// the working tree; Commit records everything and returns the hash; Tag
// and AnnotatedTag tag HEAD, TagAt tags a revision, MoveTag force-moves a
// tag; Branch creates a branch and switches to it; Checkout switches to a
// revision; Git runs any other git command; Name and Dir describe it.
//
// # Server
//
// Start(t, Options{Repos: ...}) serves repositories over git's smart http
// protocol until the test ends. Server.URL is "http://127.0.0.1:port";
// Server.Host is the virtual host name the repositories are served as
// ("git.corp.test" unless Options.Host says otherwise). The server accepts
// requests addressed to Host in absolute form, as an HTTP forward proxy
// receives them, so a client whose http_proxy (and HTTP_PROXY) is
// Server.URL reaches "http://git.corp.test/team/repo.git" without any DNS:
// this is how the real go command and modgate are pointed at it
// (Server.ProxyEnv gives the variables). Requests for any other host, and
// CONNECT requests, are refused with 502 and counted (Server.Refused).
// Requests to Server.URL directly are served too. Server.RepoURL and
// Server.ImportPath give a repository's clone URL and import path;
// Server.Add serves one more repository.
//
// The server exposes each repository's own .git directory, so whatever a
// test changes after Start (a new commit, a moved tag) is served at once;
// there is nothing to sync.
//
// With Options.User set, git requests need that user and Options.Password
// as basic auth (401 otherwise); meta tag pages need it too when
// Options.AuthMeta is set. Wrong credentials are simply another password
// in the client's configuration.
//
// A request with ?go-get=1 for a path at or below a served repository
// ("team/repo/sub/pkg") answers an HTML page with
//
//	<meta name="go-import" content="git.corp.test/team/repo git http://git.corp.test/team/repo.git">
//
// (Options.Scheme replaces "http" in the repository URL). Server.SetMeta
// adds or overrides the tag for a path prefix: a module in a subdirectory
// (the fourth field), or an import path root that is not a repository
// name. The longest matching prefix wins; no match is a 404.
//
// CleanEnv is an environment for a client git that sees no configuration
// of the machine; RequireGit skips a test without git (fails it under
// CI=true).
//
// # Faults and counters
//
// Server.Hang(true) makes git requests stall without an answer until the
// client gives up, the test ends, or MaxHang passes. Server.Requests counts
// every request, Server.GitRequests(name) the git requests for one
// repository (meta pages excluded, requests refused for auth included).
package gitserver
