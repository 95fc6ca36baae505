// Package goproxy is the HTTP face of modgate: it parses GOPROXY protocol
// requests, asks a protocol.Modules (the module cache, or a wrapper of it),
// and writes answers with the status codes, headers and one-line
// text/plain errors the go command understands.
package goproxy

import (
	"fmt"
	"strings"

	"golang.org/x/mod/module"
)

// Kind is what a request asks for.
type Kind string

const (
	KindList   Kind = "list"
	KindLatest Kind = "latest"
	KindInfo   Kind = "info"
	KindMod    Kind = "mod"
	KindZip    Kind = "zip"
)

// Request is a parsed GOPROXY request.
type Request struct {
	Kind    Kind
	Path    string // decoded module path, checked with module.CheckPath
	Version string // decoded version or query; empty for list and latest
}

// BadRequestError is a request path that is not a valid GOPROXY request.
type BadRequestError struct{ Msg string }

func (e *BadRequestError) Error() string { return e.Msg }

// ParseRequest parses an already percent-decoded URL path such as
// "/github.com/!azure/go-autorest/@v/v1.0.0.info".
func ParseRequest(urlPath string) (Request, error) {
	p := strings.TrimPrefix(urlPath, "/")
	var escPath, file string
	var req Request
	if rest, ok := strings.CutSuffix(p, "/@latest"); ok {
		escPath, req.Kind = rest, KindLatest
	} else if i := strings.LastIndex(p, "/@v/"); i >= 0 {
		escPath, file = p[:i], p[i+len("/@v/"):]
	} else {
		return Request{}, &BadRequestError{Msg: fmt.Sprintf("not a module proxy request: %q (want /<module>/@v/list, /<module>/@v/<version>.info|.mod|.zip or /<module>/@latest)", urlPath)}
	}
	path, err := module.UnescapePath(escPath)
	if err != nil {
		return Request{}, &BadRequestError{Msg: fmt.Sprintf("invalid module path: %v", err)}
	}
	req.Path = path
	if req.Kind == KindLatest {
		return req, nil
	}
	if file == "list" {
		req.Kind = KindList
		return req, nil
	}
	var escVersion string
	switch {
	case strings.HasSuffix(file, ".info"):
		req.Kind, escVersion = KindInfo, strings.TrimSuffix(file, ".info")
	case strings.HasSuffix(file, ".mod"):
		req.Kind, escVersion = KindMod, strings.TrimSuffix(file, ".mod")
	case strings.HasSuffix(file, ".zip"):
		req.Kind, escVersion = KindZip, strings.TrimSuffix(file, ".zip")
	default:
		return Request{}, &BadRequestError{Msg: fmt.Sprintf("unknown module proxy file %q (want list, <version>.info, .mod or .zip)", file)}
	}
	version, err := module.UnescapeVersion(escVersion)
	if err != nil {
		return Request{}, &BadRequestError{Msg: fmt.Sprintf("invalid version: %v", err)}
	}
	req.Version = version
	return req, nil
}
