// Package sumdb verifies module hashes against a checksum database and
// proxies that database to clients behind the firewall.
//
// Verification uses golang.org/x/mod/sumdb's Client, whose configuration
// (the latest signed tree head) and tile/lookup cache live in modgate's
// storage, so that they survive restarts, are shared by replicas, and let
// the client detect a forked or rolled-back log.
package sumdb

import (
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/modgate/modgate/internal/redact"
)

// DB names one checksum database.
type DB struct {
	Name string // e.g. the go command's default database name
	Key  string // note verifier key: "name+hash+keydata"
	URL  string // where to reach it directly; default "https://" + Name
}

// DefaultName is the go command's default checksum database.
const DefaultName = "sum.golang.org"

// knownKeys are the verifier keys the go command itself ships with, so that
// a database can be named without its key.
var knownKeys = map[string]string{
	DefaultName: "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
}

// ParseDB parses a database in GOSUMDB syntax: "name", "name+key",
// "name URL" or "name+key URL". A bare name must be a known database.
func ParseDB(spec string) (DB, error) {
	f := strings.Fields(spec)
	if len(f) == 0 || len(f) > 2 {
		return DB{}, fmt.Errorf("checksum database %q: want \"name\", \"name+key\" or \"name+key URL\"", spec)
	}
	db := DB{Key: f[0]}
	if k, ok := knownKeys[f[0]]; ok {
		db.Key = k
	} else if !strings.Contains(f[0], "+") {
		return DB{}, fmt.Errorf("checksum database %q: unknown name; give its key as name+hash+keydata", f[0])
	}
	v, err := note.NewVerifier(db.Key)
	if err != nil {
		return DB{}, fmt.Errorf("checksum database %q: invalid key: %v", f[0], err)
	}
	db.Name = v.Name()
	if err := checkDBName(db.Name); err != nil {
		return DB{}, err
	}
	db.URL = "https://" + db.Name
	if len(f) == 2 {
		// Paths are appended to the URL: it has no query or fragment,
		// and no trailing slash.
		raw := strings.TrimRight(f[1], "/")
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return DB{}, fmt.Errorf("checksum database %q: invalid URL %q: want http(s)://host[/path]", f[0], redact.URL(f[1]))
		}
		db.URL = raw
	}
	return db, nil
}

// checkDBName applies the go command's rule to a database name (it must be
// host[/path], nothing else), and keeps it usable in storage keys and
// /sumdb/<name>/ paths.
func checkDBName(name string) error {
	u, err := url.Parse("https://" + name)
	ok := err == nil && u.Host != "" && u.RawPath == "" &&
		*u == (url.URL{Scheme: "https", Host: u.Host, Path: u.Path})
	for el := range strings.SplitSeq(name, "/") {
		ok = ok && el != "" && el != "." && el != ".."
	}
	if !ok {
		return fmt.Errorf("checksum database name %q: must be host[/path]", name)
	}
	return nil
}
