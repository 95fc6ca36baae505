// Package bundle carries modules into networks that never reach the
// internet: Export writes one file holding every module file a build
// needs and the checksum database's answers that prove them; Import checks
// every file against those proofs and the database's public key, then
// stores them in a data dir exactly as modgate's cache would, with the
// verified checksum database state, so that a modgate with no upstream
// serves them and answers the go command's own verification.
//
// A bundle is a tar file (zips are compressed already), written and read
// as a stream:
//
//	manifest.json                          what the bundle holds (Manifest)
//	sumdb/<db>/lookup/<path>@<version>     the database's answers, as it
//	sumdb/<db>/tile/<H>/<L>/<N>[.p/<W>]    served them (wire format)
//	mod/<path>/@v/<version>.info|.mod|.zip module files, named by their
//	                                       storage keys (escaped path and
//	                                       version)
//
// The proofs are what modgate's own Verifier asked the database while it
// checked every go.mod and zip on export, starting from an empty state (or
// from Manifest.SumDB.Base). Import repeats exactly those checks, in the
// same order, with a Verifier whose only database is the bundle: it asks
// for exactly the answers export recorded, and a changed record, tile or
// signature fails the check. The database's key comes from the importer's
// configuration, never from the bundle.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"
	modzip "golang.org/x/mod/zip"

	"github.com/modgate/modgate/internal/store"
)

// FormatVersion is the bundle format this package writes and reads.
const FormatVersion = 1

// ManifestName is the name of the first entry of every bundle.
const ManifestName = "manifest.json"

// Manifest describes a bundle.
type Manifest struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	SumDB   DBState   `json:"sumdb"`
	// Modules are the module versions, in the order export checked them
	// against the database (import repeats it).
	Modules []Module `json:"modules"`
	// Proofs are the database's answers the bundle holds, in the order
	// export first asked for them: "lookup/<path>@<version>" and
	// "tile/<H>/<L>/<N>[.p/<W>]", escaped as in the database's URLs.
	Proofs []string `json:"proofs"`
}

// DBState names the checksum database that proves the bundle and the trees
// its proofs start from and lead to.
type DBState struct {
	Name string `json:"name"`
	Key  string `json:"key"` // informational: import uses its own
	// Base is the signed tree head the proofs start from: the one the
	// importing data dir holds (export --base-tree), or empty for none.
	Base string `json:"base,omitempty"`
	// Tree is the signed tree head the proofs lead to.
	Tree string `json:"tree"`
}

// Module is one module version in a bundle: its .info and .mod always,
// its .zip when Zip is set.
type Module struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	Mod     string `json:"mod"`           // h1: of the go.mod
	Zip     string `json:"zip,omitempty"` // h1: of the zip, "" when it has none
}

func (m Module) String() string { return m.Path + "@" + m.Version }

// exts are the module files a bundle holds for m, in bundle order.
func (m Module) exts() []string {
	if m.Zip != "" {
		return []string{"info", "mod", "zip"}
	}
	return []string{"info", "mod"}
}

// Limits on what Import accepts, so that a bundle from anywhere cannot
// make it use unbounded memory, disk or time before it is found wrong.
const (
	maxManifestSize = 64 << 20
	maxModules      = 100000
	// A lookup and the tiles that check it: a cold check reads at most a
	// tile per level of the log and the tree edge's at each move, about
	// ten; more per module is not something export writes.
	maxProofsPerModule = 16
	maxProofsExtra     = 256
	maxProofSize       = 1 << 20 // the verifier's own limit on an answer
	maxInfoSize        = 64 << 10
	maxModSize         = modzip.MaxGoMod
	maxZipSize         = modzip.MaxZipFile
)

// maxEntrySize is the largest entry of kind ext ("info", "mod", "zip",
// "proof").
func maxEntrySize(ext string) int64 {
	switch ext {
	case "info":
		return maxInfoSize
	case "mod":
		return maxModSize
	case "zip":
		return maxZipSize
	}
	return maxProofSize
}

// parseManifest decodes and checks a manifest: a known format, a
// database, canonical and unique module versions with well-formed hashes,
// and proof names of the two kinds the database serves, each once.
func parseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %v", err)
	}
	if dec.More() {
		return nil, errors.New("manifest: trailing data after the JSON document")
	}
	if m.Format != FormatVersion {
		return nil, fmt.Errorf("manifest: format %d, this modgate reads format %d", m.Format, FormatVersion)
	}
	if m.SumDB.Name == "" || m.SumDB.Tree == "" {
		return nil, errors.New("manifest: no checksum database or tree")
	}
	if len(m.Modules) == 0 {
		return nil, errors.New("manifest: no modules")
	}
	if len(m.Modules) > maxModules {
		return nil, fmt.Errorf("manifest: %d modules, the limit is %d", len(m.Modules), maxModules)
	}
	if n := maxProofs(len(m.Modules)); len(m.Proofs) > n {
		return nil, fmt.Errorf("manifest: %d checksum database answers for %d modules, the limit is %d", len(m.Proofs), len(m.Modules), n)
	}
	seen := make(map[string]bool, len(m.Modules)+len(m.Proofs))
	for _, mod := range m.Modules {
		if err := checkModule(mod); err != nil {
			return nil, fmt.Errorf("manifest: %v", err)
		}
		if seen[mod.String()] {
			return nil, fmt.Errorf("manifest: %s listed twice", mod)
		}
		seen[mod.String()] = true
	}
	for _, p := range m.Proofs {
		if err := checkProofName(p); err != nil {
			return nil, fmt.Errorf("manifest: %v", err)
		}
		if seen[p] {
			return nil, fmt.Errorf("manifest: checksum database answer %q listed twice", p)
		}
		seen[p] = true
	}
	return &m, nil
}

func maxProofs(modules int) int { return maxProofsPerModule*modules + maxProofsExtra }

func checkModule(m Module) error {
	if err := module.Check(m.Path, m.Version); err != nil {
		return err
	}
	if module.CanonicalVersion(m.Version) != m.Version {
		return fmt.Errorf("%s: version is not canonical", m)
	}
	for _, h := range []string{m.Mod, m.Zip} {
		if h != "" && !isH1(h) {
			return fmt.Errorf("%s: malformed hash %q", m, h)
		}
	}
	if m.Mod == "" {
		return fmt.Errorf("%s: no go.mod hash", m)
	}
	// Every file must have a storage key (length limits).
	for _, ext := range m.exts() {
		if _, err := store.VersionKey(m.Path, m.Version, ext); err != nil {
			return fmt.Errorf("%s: %v", m, err)
		}
	}
	return nil
}

// isH1 reports whether h looks like an h1: hash: "h1:" and the base64 of
// a SHA-256.
func isH1(h string) bool {
	b64, ok := strings.CutPrefix(h, "h1:")
	if !ok || len(b64) != 44 || !strings.HasSuffix(b64, "=") {
		return false
	}
	for _, c := range b64[:43] {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// checkProofName accepts the database paths a verifier asks for: a lookup
// of a valid escaped module path and canonical version, or a tile in its
// canonical form.
func checkProofName(p string) error {
	if rest, ok := strings.CutPrefix(p, "lookup/"); ok {
		ep, ev, ok := strings.Cut(rest, "@")
		path, err1 := module.UnescapePath(ep)
		vers, err2 := module.UnescapeVersion(ev)
		if !ok || err1 != nil || err2 != nil || module.CanonicalVersion(vers) != vers || module.Check(path, vers) != nil {
			return fmt.Errorf("invalid checksum database lookup %q", p)
		}
		return store.CheckKey("sumdb/x/" + p)
	}
	if strings.HasPrefix(p, "tile/") {
		t, err := tlog.ParseTilePath(p)
		if err != nil || t.Path() != p {
			return fmt.Errorf("invalid checksum database tile %q", p)
		}
		return nil
	}
	return fmt.Errorf("invalid checksum database answer %q: want lookup/... or tile/...", p)
}

// proofEntry is the bundle entry name of proof p of database db.
func proofEntry(db, p string) string { return "sumdb/" + db + "/" + p }

// moduleEntry is the bundle entry name of m's file ext: its storage key.
func moduleEntry(m Module, ext string) string {
	key, _ := store.VersionKey(m.Path, m.Version, ext) // checked by checkModule
	return key
}
