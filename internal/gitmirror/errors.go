package gitmirror

import (
	"context"
	"errors"
	"io/fs"
	"strings"
)

// Kind says what went wrong talking to a remote, for callers that map it
// to an answer (not found, bad gateway, ...).
type Kind int

const (
	KindOther    Kind = iota // anything else git reported
	KindRefused              // the remote URL is not allowed; git never ran
	KindAuth                 // the host refused the credentials, or there were none
	KindNotFound             // the host has no such repository
	KindTimeout              // Config.Timeout or Config.LowSpeedTime passed
	KindConnect              // the host could not be reached
	KindTooLarge             // the mirror would grow past Config.MaxRepoSize
	KindHostKey              // the ssh host's key is not in the known_hosts file
)

// Error is a failure to reach or fetch from a remote, as one line that
// names the host and never contains a credential.
type Error struct {
	Host   string // host[:port], "" when the URL had none usable
	Kind   Kind
	Detail string // already redacted and cut to a line
}

func (e *Error) Error() string {
	host := e.Host
	if host == "" {
		host = "git remote"
	}
	var msg string
	switch e.Kind {
	case KindAuth:
		msg = "authentication failed (check the credentials for this host)"
	case KindNotFound:
		msg = "repository not found"
	case KindTimeout:
		msg = "timed out"
	case KindConnect:
		msg = "cannot connect"
	case KindTooLarge:
		msg = "repository too large"
	case KindRefused:
		msg = "remote URL refused"
	case KindHostKey:
		msg = "ssh host key not trusted (not in the known_hosts file, or changed)"
	default:
		msg = "git failed"
	}
	if e.Detail == "" {
		return host + ": " + msg
	}
	if e.Kind == KindTimeout || e.Kind == KindAuth {
		// "timed out after 30s", "authentication failed (...): host key ..."
		sep := " "
		if e.Kind == KindAuth {
			sep = ": "
		}
		return host + ": " + msg + sep + e.Detail
	}
	return host + ": " + msg + ": " + e.Detail
}

// Is makes a missing repository match fs.ErrNotExist, a timeout
// context.DeadlineExceeded and a size limit ErrTooLarge.
func (e *Error) Is(target error) bool {
	switch e.Kind {
	case KindNotFound:
		return target == fs.ErrNotExist
	case KindTimeout:
		return target == context.DeadlineExceeded
	case KindTooLarge:
		return target == ErrTooLarge
	}
	return false
}

// ErrTooLarge is matched (errors.Is) by every size limit: a file, an
// archive, a mirror.
var ErrTooLarge = errors.New("too large")

// ErrUnknownRevision is returned (wrapped, matching errors.Is) when a
// revision does not name a commit in the mirror. It also matches
// fs.ErrNotExist, as the go command's own unknown-revision error does.
var ErrUnknownRevision error = unknownRevision{}

type unknownRevision struct{}

func (unknownRevision) Error() string        { return "unknown revision" }
func (unknownRevision) Is(target error) bool { return target == fs.ErrNotExist }

// classify turns a failed network command's stderr into an Error. git
// runs with LC_ALL=C, so its messages are the English ones matched here.
// lowSpeed is the Detail of a transfer that stalled.
func classify(host, stderr, lowSpeed string) *Error {
	low := strings.ToLower(stderr)
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(low, s) {
				return true
			}
		}
		return false
	}
	detail := gitMessage(stderr)
	switch {
	case has("operation too slow"):
		return &Error{Host: host, Kind: KindTimeout, Detail: lowSpeed}
	case has("operation timed out", "timed out after"):
		return &Error{Host: host, Kind: KindTimeout, Detail: "(" + detail + ")"}
	case has("authentication failed", "could not read username", "could not read password",
		"terminal prompts disabled", "returned error: 401", "returned error: 403", "permission denied (publickey"):
		return &Error{Host: host, Kind: KindAuth}
	case has("host key verification failed", "no matching host key", "remote host identification has changed"):
		return &Error{Host: host, Kind: KindHostKey}
	case has("repository not found", "' not found", "returned error: 404", "does not appear to be a git repository",
		"no such repository", "repository does not exist", "could not be found"):
		return &Error{Host: host, Kind: KindNotFound}
	case has("could not resolve", "failed to connect", "couldn't connect", "connection refused",
		"connection timed out", "no route to host", "network is unreachable", "connection reset",
		"ssl", "certificate", "returned error: 502", "returned error: 503", "returned error: 504",
		"proxy", "empty reply from server"):
		return &Error{Host: host, Kind: KindConnect, Detail: detail}
	}
	return &Error{Host: host, Kind: KindOther, Detail: detail}
}

// gitMessage picks the line of git's stderr that explains a failure: the
// last "fatal:" line, else the last "error:" line, else the last line,
// without its prefix, redacted and cut.
func gitMessage(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	pick := ""
	for _, prefix := range []string{"fatal: ", "error: "} {
		for i := len(lines) - 1; i >= 0 && pick == ""; i-- {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), prefix); ok {
				pick = rest
			}
		}
	}
	if pick == "" && len(lines) > 0 {
		pick = lines[len(lines)-1]
	}
	return lineOf(pick)
}
