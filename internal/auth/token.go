// Package auth is modgate's client authentication: the tokens file that
// `modgate token` edits, the Store that serves it to the running server
// (re-read when it changes), and the Gate that turns a request's
// credentials into a protocol.Principal and refuses what that principal
// may not read.
//
// A token is a random secret the client sends as a bearer token or as the
// password of basic auth; modgate stores only its SHA-256 digest, with a
// name (the principal in logs and the audit log), the module path
// patterns it may read (GOPRIVATE syntax, "*" for everything) and whether
// it may use the admin endpoints.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/modgate/modgate/internal/protocol"
)

// Token is what modgate knows about a token: everything but the secret
// and its digest, so that a Token can be listed, logged and put in a
// context without care.
type Token struct {
	Name string
	// Allow holds the module path patterns the token may read, GOPRIVATE
	// syntax (path.Match globs matched against path prefixes); "*" matches
	// every module path.
	Allow   []string
	Admin   bool
	Created time.Time
}

// SecretPrefix starts every token, so that a leaked token is recognizable
// (secret scanners, log greps) and a pasted wrong string is caught early.
const SecretPrefix = "mgt_"

// secretBytes is the entropy of a token. With 256 random bits nobody can
// guess a token or find one for a digest, which is why a plain unsalted
// SHA-256 is the right way to store it: a password hash (bcrypt, argon2)
// protects low-entropy secrets against guessing, at a cost paid on every
// request; a random 256-bit secret needs no such protection, and one
// SHA-256 per request costs well under a microsecond.
const secretBytes = 32

// maxName bounds a token's name: it is a principal in logs and audit
// events.
const maxName = 64

// newSecret returns a new token: SecretPrefix and 32 random bytes in
// unpadded base64url.
func newSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// digest is the SHA-256 of a token, the only form in which modgate keeps
// it.
func digest(secret string) [sha256.Size]byte {
	return sha256.Sum256([]byte(secret))
}

// formatDigest is a digest as the tokens file holds it.
func formatDigest(d [sha256.Size]byte) string {
	return "sha256:" + hex.EncodeToString(d[:])
}

// parseDigest reads a digest in the tokens file's form.
func parseDigest(s string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return d, errors.New(`hash does not start with "sha256:"`)
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return d, errors.New("hash is not 64 hexadecimal digits")
	}
	copy(d[:], b)
	return d, nil
}

// CheckName reports whether name can name a token: 1 to 64 characters of
// [A-Za-z0-9._-], and not the name of the anonymous principal.
func CheckName(name string) error {
	if name == "" {
		return errors.New("token name is empty")
	}
	if len(name) > maxName {
		return fmt.Errorf("token name is longer than %d characters", maxName)
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("token name %q has a character outside [A-Za-z0-9._-]", name)
		}
	}
	if name == protocol.Anonymous {
		// The audit log names requests without a token "anonymous".
		return fmt.Errorf("token name %q is reserved for requests without a token", name)
	}
	return nil
}

// ParsePatterns splits a comma-separated list of module path patterns
// (GOPRIVATE syntax) and checks each; empty entries are dropped.
func ParsePatterns(list string) ([]string, error) {
	var out []string
	for p := range strings.SplitSeq(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if err := checkPattern(p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// checkPattern reports whether p is a pattern module.MatchPrefixPatterns
// can use: a valid path.Match glob without spaces or commas. (A bad glob
// would silently match nothing.)
func checkPattern(p string) error {
	if p == "" || strings.ContainsAny(p, ", \t\r\n") {
		return fmt.Errorf("pattern %q is empty or has a comma or space", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("pattern %q is not a valid glob (path.Match syntax)", p)
	}
	return nil
}
