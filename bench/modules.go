package main

import (
	"fmt"
	"strings"
)

// moduleSet is the real-world module set of the cold and warm parts: popular,
// small public modules pinned at exact versions (about 7 MB of zips, 58
// modules, plus the go.mod files of their requirements). Each was checked to
// exist on the upstream when the set was chosen. Order matters only for
// -modules N, which keeps the first N.
var moduleSet = [][2]string{
	{"github.com/google/uuid", "v1.6.0"},
	{"github.com/pkg/errors", "v0.9.1"},
	{"github.com/davecgh/go-spew", "v1.1.1"},
	{"github.com/pmezard/go-difflib", "v1.0.0"},
	{"github.com/stretchr/testify", "v1.9.0"},
	{"github.com/stretchr/objx", "v0.5.2"},
	{"gopkg.in/yaml.v3", "v3.0.1"},
	{"gopkg.in/yaml.v2", "v2.4.0"},
	{"github.com/spf13/pflag", "v1.0.5"},
	{"github.com/spf13/cobra", "v1.8.0"},
	{"github.com/inconshreveable/mousetrap", "v1.1.0"},
	{"github.com/cpuguy83/go-md2man/v2", "v2.0.3"},
	{"github.com/russross/blackfriday/v2", "v2.1.0"},
	{"github.com/sirupsen/logrus", "v1.9.3"},
	{"github.com/mattn/go-isatty", "v0.0.20"},
	{"github.com/mattn/go-colorable", "v0.1.13"},
	{"github.com/fatih/color", "v1.16.0"},
	{"github.com/gorilla/mux", "v1.8.1"},
	{"github.com/go-chi/chi/v5", "v5.0.12"},
	{"github.com/julienschmidt/httprouter", "v1.3.0"},
	{"github.com/cespare/xxhash/v2", "v2.3.0"},
	{"github.com/hashicorp/golang-lru/v2", "v2.0.7"},
	{"github.com/BurntSushi/toml", "v1.3.2"},
	{"github.com/kr/pretty", "v0.3.1"},
	{"github.com/kr/text", "v0.2.0"},
	{"github.com/google/go-cmp", "v0.6.0"},
	{"github.com/json-iterator/go", "v1.1.12"},
	{"github.com/modern-go/reflect2", "v1.0.2"},
	{"github.com/modern-go/concurrent", "v0.0.0-20180306012644-bacd9c7ef1dd"},
	{"github.com/mitchellh/mapstructure", "v1.5.0"},
	{"github.com/mitchellh/go-homedir", "v1.1.0"},
	{"github.com/hashicorp/go-multierror", "v1.1.1"},
	{"github.com/hashicorp/errwrap", "v1.1.0"},
	{"github.com/go-logr/logr", "v1.4.1"},
	{"github.com/oklog/ulid", "v1.3.1"},
	{"github.com/dustin/go-humanize", "v1.0.1"},
	{"github.com/rivo/uniseg", "v0.4.7"},
	{"github.com/mattn/go-runewidth", "v0.0.15"},
	{"github.com/olekukonko/tablewriter", "v0.0.5"},
	{"github.com/golang/snappy", "v0.0.4"},
	{"github.com/beorn7/perks", "v1.0.1"},
	{"github.com/munnerz/goautoneg", "v0.0.0-20191010083416-a7dc8b61c822"},
	{"go.uber.org/multierr", "v1.11.0"},
	{"go.uber.org/atomic", "v1.11.0"},
	{"github.com/jmespath/go-jmespath", "v0.4.0"},
	{"github.com/gorilla/websocket", "v1.5.1"},
	{"github.com/robfig/cron/v3", "v3.0.1"},
	{"github.com/cenkalti/backoff/v4", "v4.2.1"},
	{"github.com/pelletier/go-toml", "v1.9.5"},
	{"github.com/subosito/gotenv", "v1.6.0"},
	{"github.com/magiconair/properties", "v1.8.7"},
	{"github.com/kballard/go-shellquote", "v0.0.0-20180428030007-95032a82bc51"},
	{"github.com/felixge/httpsnoop", "v1.0.4"},
	{"github.com/gobwas/glob", "v0.2.3"},
	{"github.com/valyala/bytebufferpool", "v1.0.0"},
	{"golang.org/x/sys", "v0.20.0"},
	{"golang.org/x/sync", "v0.7.0"},
	{"golang.org/x/mod", "v0.17.0"},
}

// goModFor returns the go.mod of a throwaway main module requiring the first
// n modules of the set ("go mod download" then fetches their zips and the
// go.mod files of the module graph).
func goModFor(n int) string {
	var b strings.Builder
	b.WriteString("module example.com/modgatebench\n\ngo 1.21\n\nrequire (\n")
	for _, m := range moduleSet[:n] {
		fmt.Fprintf(&b, "\t%s %s\n", m[0], m[1])
	}
	b.WriteString(")\n")
	return b.String()
}
