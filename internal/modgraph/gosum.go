package modgraph

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/mod/module"
)

// FromGoSum returns the module versions a go.sum lists with their hashes:
// a line "M V/go.mod h1:..." puts M@V in GoMods, a line "M V h1:..." in
// Zips. Every line must be well formed (path, canonical version, an h1:
// hash of 32 bytes); the same key with two different hashes is an error,
// as is a go.sum the go command would refuse.
func FromGoSum(gosum []byte) (*Graph, error) {
	g := &Graph{Sums: map[module.Version]string{}}
	gomods, zips := map[module.Version]bool{}, map[module.Version]bool{}
	for n, line := range bytes.Split(gosum, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("go.sum line %d: want \"module version hash\"", n+1)
		}
		path, version, hash := f[0], f[1], f[2]
		m := module.Version{Path: path, Version: strings.TrimSuffix(version, "/go.mod")}
		if err := checkVersion(m); err != nil {
			return nil, fmt.Errorf("go.sum line %d: %w", n+1, err)
		}
		if err := checkH1(hash); err != nil {
			return nil, fmt.Errorf("go.sum line %d: %s@%s: %w", n+1, path, version, err)
		}
		key := module.Version{Path: path, Version: version}
		if prev, ok := g.Sums[key]; ok && prev != hash {
			return nil, fmt.Errorf("go.sum line %d: %s@%s has two different hashes", n+1, path, version)
		}
		g.Sums[key] = hash
		if m.Version != version {
			gomods[m] = true
		} else {
			zips[m] = true
		}
	}
	g.GoMods, g.Zips = sortedSet(gomods), sortedSet(zips)
	return g, nil
}

// checkH1 accepts the go command's only hash: "h1:" and the base64 of a
// SHA-256.
func checkH1(hash string) error {
	b64, ok := strings.CutPrefix(hash, "h1:")
	if !ok {
		return fmt.Errorf("hash %.20q is not h1:", hash)
	}
	sum, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || len(sum) != 32 {
		return fmt.Errorf("hash %.60q is not the base64 of a SHA-256", hash)
	}
	return nil
}
