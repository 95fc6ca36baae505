package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/mod/module"
)

// Key layout. Module paths and versions are stored in their case-encoded
// form (module.EscapePath: "!a" for "A"), which is all lower case, so two
// modules that differ only in case never collide on a case-insensitive
// filesystem. module.CheckPath forbids "." and ".." elements, so an escaped
// path cannot climb out of its prefix.
//
//	mod/<escaped path>/@v/<escaped version>.info|.mod|.zip|.ziphash
//	meta/<escaped path>/@/list|latest
//	meta/<escaped path>/@/access   (usage of its versions: package access)
//	meta/<escaped path>/@/query/<sha256 of the query>  (names only: query
//	                                                  answers are kept in memory)
//	stats/history/<replica>.json   (a replica's chart series: package history)
//
// The "@" element keeps one module's documents apart from another module
// whose path extends it ("example.com/m" and "example.com/m/list"): "@" cannot
// appear in a module path.

// Every key builder returns only keys that pass CheckKey: a module path
// whose escaped form does not fit the limits (MaxKeyElemLen, MaxKeyLen) has
// no key, and the caller gets ErrInvalidKey instead of a filesystem error.

// VersionKey is the key of one immutable file of a module version.
// ext is one of "info", "mod", "zip", "ziphash".
func VersionKey(path, version, ext string) (string, error) {
	switch ext {
	case "info", "mod", "zip", "ziphash":
	default:
		return "", fmt.Errorf("%w: %q is not a module file extension", ErrInvalidKey, ext)
	}
	ep, err := module.EscapePath(path)
	if err != nil {
		return "", err
	}
	ev, err := module.EscapeVersion(version)
	if err != nil {
		return "", err
	}
	key := "mod/" + ep + "/@v/" + ev + "." + ext
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// VersionPrefix is the prefix under which all stored versions of path live.
func VersionPrefix(path string) (string, error) {
	ep, err := module.EscapePath(path)
	if err != nil {
		return "", err
	}
	dir := "mod/" + ep + "/@v"
	if err := CheckKey(dir); err != nil {
		return "", err
	}
	return dir + "/", nil
}

// ParseVersionKey is the inverse of VersionKey: for every key it accepts,
// VersionKey(path, version, ext) == key.
func ParseVersionKey(key string) (path, version, ext string, err error) {
	if err := CheckKey(key); err != nil {
		return "", "", "", err
	}
	rest, ok := strings.CutPrefix(key, "mod/")
	if !ok {
		return "", "", "", fmt.Errorf("%w: %q is not a module key", ErrInvalidKey, key)
	}
	ep, file, ok := strings.Cut(rest, "/@v/")
	if !ok {
		return "", "", "", fmt.Errorf("%w: %q is not a module key", ErrInvalidKey, key)
	}
	dot := strings.LastIndexByte(file, '.')
	if dot < 0 {
		return "", "", "", fmt.Errorf("%w: %q has no extension", ErrInvalidKey, key)
	}
	switch file[dot+1:] {
	case "info", "mod", "zip", "ziphash":
	default:
		return "", "", "", fmt.Errorf("%w: %q is not a module file", ErrInvalidKey, key)
	}
	if path, err = module.UnescapePath(ep); err != nil {
		return "", "", "", err
	}
	if version, err = module.UnescapeVersion(file[:dot]); err != nil {
		return "", "", "", err
	}
	return path, version, file[dot+1:], nil
}

// MetaKey is the key of a mutable per-module document ("list", "latest").
func MetaKey(path, name string) (string, error) {
	ep, err := module.EscapePath(path)
	if err != nil {
		return "", err
	}
	key := "meta/" + ep + "/@/" + name
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// QueryKey names the cached answer to a non-canonical .info query (a
// branch name or commit prefix). The cache keeps these answers in memory
// only (clients choose queries freely), so the key is an identity, not a
// file; it is shaped like a storage key so that one module's answers share
// a prefix. Queries are hashed because they may contain any characters.
func QueryKey(path, query string) (string, error) {
	sum := sha256.Sum256([]byte(query))
	return MetaKey(path, "query/"+hex.EncodeToString(sum[:16]))
}

// Key size limits. Keys become file paths on disk: an element longer than
// the filesystem's name limit (255 bytes on nearly all of them) cannot be
// stored, and would fail as a storage error rather than as a bad request.
// The total limit keeps data dir plus key well below PATH_MAX (4096).
const (
	MaxKeyElemLen = 255
	MaxKeyLen     = 1024
)

// CheckKey reports whether key is a clean relative slash path that fits the
// size limits.
func CheckKey(key string) error {
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: %s is %d bytes long, the limit is %d", ErrInvalidKey, quoteKey(key), len(key), MaxKeyLen)
	}
	if key == "" || strings.HasPrefix(key, "/") || strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("%w: %s", ErrInvalidKey, quoteKey(key))
	}
	for elem := range strings.SplitSeq(key, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return fmt.Errorf("%w: %s", ErrInvalidKey, quoteKey(key))
		}
		if len(elem) > MaxKeyElemLen {
			return fmt.Errorf("%w: %s has a path element of %d bytes, the limit is %d", ErrInvalidKey, quoteKey(key), len(elem), MaxKeyElemLen)
		}
	}
	return nil
}

// quoteKey quotes a key for an error message, shortened: keys come from
// clients, and the message must stay one short line. Quoting can make each
// byte four, so the cut is small.
func quoteKey(key string) string {
	const max = 48
	if len(key) <= max {
		return fmt.Sprintf("%q", key)
	}
	return fmt.Sprintf("%q...", strings.ToValidUTF8(key[:max], ""))
}
