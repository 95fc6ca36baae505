package scan

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// SBOMSpec is the CycloneDX version WriteSBOM writes: 1.6 is the newest
// that the common consumers (Dependency-Track, Grype, Trivy) all read.
const SBOMSpec = cdx.SpecVersion1_6

// PropertyH1 names the property holding a module's go.sum hash as written.
const PropertyH1 = "modgate:go.sum:h1"

// WriteSBOM writes bl as a CycloneDX JSON SBOM: the main module as the
// metadata component, every module version as a library with its package
// URL and, when go.sum has it, its h1: hash, and the module graph between
// them as dependencies. The h1 is a SHA-256 (of the
// module's file list with each file's SHA-256, "go help module-auth"), so
// it is given as a SHA-256 hash in hex, and as written in a property, for
// tools that compare it with go.sum.
func WriteSBOM(w io.Writer, bl *BuildList, tool, toolVersion string, now time.Time) error {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + newUUID()
	bom.Metadata = &cdx.Metadata{
		Timestamp: now.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: tool, Version: toolVersion,
		}}},
		Component: &cdx.Component{
			BOMRef: purl(bl.Main, ""), Type: cdx.ComponentTypeApplication,
			Name: bl.Main, PackageURL: purl(bl.Main, ""),
		},
	}
	comps := make([]cdx.Component, 0, len(bl.Modules))
	for _, m := range bl.Modules {
		c := cdx.Component{
			BOMRef: purl(m.Path, m.Version), Type: cdx.ComponentTypeLibrary,
			Name: m.Path, Version: m.Version, PackageURL: purl(m.Path, m.Version),
		}
		if m.Sum != "" {
			sum, err := h1Hex(m.Sum)
			if err != nil {
				return fmt.Errorf("go.sum: %s@%s: %v", m.Path, m.Version, err)
			}
			c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: sum}}
			c.Properties = &[]cdx.Property{{Name: PropertyH1, Value: m.Sum}}
		}
		comps = append(comps, c)
	}
	bom.Components = &comps
	bom.Dependencies = dependencies(bl)
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	return enc.EncodeVersion(bom, SBOMSpec)
}

// dependencies is the module graph between the build list's versions
// (BuildList.Requires), by bom-ref: one entry for the main module and one
// for each component, with an empty dependsOn for a module that requires
// nothing, as CycloneDX asks ("known to have no dependencies").
func dependencies(bl *BuildList) *[]cdx.Dependency {
	refs := map[string]string{bl.Main: purl(bl.Main, "")}
	for _, m := range bl.Modules {
		refs[m.Path] = purl(m.Path, m.Version)
	}
	deps := make([]cdx.Dependency, 0, len(bl.Modules)+1)
	add := func(path string) {
		on := []string{}
		for _, req := range bl.Requires[path] {
			if ref, ok := refs[req]; ok {
				on = append(on, ref)
			}
		}
		deps = append(deps, cdx.Dependency{Ref: refs[path], Dependencies: &on})
	}
	add(bl.Main)
	for _, m := range bl.Modules {
		add(m.Path)
	}
	return &deps
}

// purl is the package URL of a Go module version: pkg:golang/ and the
// module path, each element percent-encoded as the purl spec asks.
func purl(path, version string) string {
	elems := strings.Split(path, "/")
	for i, e := range elems {
		elems[i] = url.PathEscape(e)
	}
	s := "pkg:golang/" + strings.Join(elems, "/")
	if version != "" {
		s += "@" + strings.ReplaceAll(url.PathEscape(version), "+", "%2B")
	}
	return s
}

// h1Hex turns "h1:<base64 SHA-256>" into the hash in hex.
func h1Hex(h1 string) (string, error) {
	b64, ok := strings.CutPrefix(h1, "h1:")
	if !ok {
		return "", fmt.Errorf("hash %q is not an h1: hash", h1)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 32 {
		return "", fmt.Errorf("hash %q is not a base64 SHA-256", h1)
	}
	return hex.EncodeToString(raw), nil
}

// newUUID returns a random (version 4) UUID, as serialNumber wants.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
