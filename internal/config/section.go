package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// sections is the table of config file sections: keys whose value is a
// table of keys of their own, or a list of such tables, for settings with
// more structure than a flag or an environment variable can carry (per-host
// credentials, policies). Sections exist only in config files. To add one,
// add a field to Config and a line here, made by tableSection or
// listSection.
func (c *Config) sections() []*section {
	return []*section{
		listSection(&c.GitHosts, "git-hosts", "credentials for git hosts, by host (win over the .netrc's)", (*GitHost).fields, checkGitHost),
		tableSection(&c.RedisTopology, "redis-topology", "Redis Sentinel or Cluster instead of the single server of --redis (whose user, password, db and TLS still apply)", (*RedisTopology).fields, checkRedisTopology),
		listSection(&c.GitRepos, "git-repos", "repository URLs of module path prefixes whose servers answer no go-get meta tags", (*GitRepo).fields, checkGitRepo),
	}
}

// section is one row of the section table. A section's own keys are
// options, declared by a function that binds them to one table as
// Config.options binds the top level: same kinds, same checks, defaults
// for keys a table leaves out.
type section struct {
	name string
	help string
	kind string // shown in usage: "table" or "list of tables"
	// keys returns the options of one table, for usage.
	keys  func() []*option
	reset func()
	// decode replaces the section's value with one decoded from a file
	// (map[string]any, []any or []map[string]any). Every problem is
	// reported, each as a *keyError.
	decode func(x any) error
	// validate checks the value; its errors are *keyErrors too.
	validate func() error
}

// keyError is a problem with one key inside a section. Who reports it
// prefixes the section's name and where its value came from:
// `config file m.yaml: hosts[1].token: invalid ...` or, for a key that is
// not known, `config file m.yaml: unknown key "hosts[1].tokn" (did you mean
// "token"?)`.
type keyError struct {
	path    string // below the section: "[1].token", ".token", or "" for the section itself
	unknown bool   // no such key; then hint is the closest known one, or ""
	hint    string
	err     error
}

func (e *keyError) Error() string {
	if e.unknown {
		return fmt.Sprintf("unknown key %q", e.path)
	}
	return e.path + ": " + e.err.Error()
}

// sectionError formats err, returned by the decode or validate of section
// name, as the problems of keys below name, each prefixed with where (""
// or "config file m.yaml: ") and joined.
func sectionError(where, name string, err error) error {
	var errs []error
	for _, e := range unjoin(err) {
		ke, ok := e.(*keyError)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s%s: %v", where, name, e))
		case ke.unknown:
			hint := ""
			if ke.hint != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", ke.hint)
			}
			errs = append(errs, fmt.Errorf("%sunknown key %q%s", where, name+ke.path, hint))
		default:
			errs = append(errs, fmt.Errorf("%s%s%s: %v", where, name, ke.path, ke.err))
		}
	}
	return errors.Join(errs...)
}

// unjoin returns the errors joined in err (errors.Join), or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var all []error
		for _, e := range j.Unwrap() {
			all = append(all, unjoin(e)...)
		}
		return all
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// tableSection returns a section whose value is one table, decoded into
// *p. fields binds the table's keys to a T; check, if not nil, checks the
// relations between them once each has passed its own checks.
func tableSection[T any](p *T, name, help string, fields func(*T) []*option, check func(*T) error) *section {
	return &section{
		name:  name,
		help:  help,
		kind:  "table",
		keys:  func() []*option { var v T; return fields(&v) },
		reset: func() { *p = newTable(fields) },
		decode: func(x any) error {
			v, err := decodeTable(x, "", fields)
			if err != nil {
				return err
			}
			*p = v
			return nil
		},
		validate: func() error { return validateTable(p, "", fields, check) },
	}
}

// listSection returns a section whose value is a list of tables (in YAML a
// sequence of mappings, in TOML an array of tables, [[name]]), decoded
// into *p. fields and check are as for tableSection, for each table.
func listSection[T any](p *[]T, name, help string, fields func(*T) []*option, check func(*T) error) *section {
	return &section{
		name:  name,
		help:  help,
		kind:  "list of tables",
		keys:  func() []*option { var v T; return fields(&v) },
		reset: func() { *p = nil },
		decode: func(x any) error {
			var items []any
			switch v := x.(type) {
			case []any:
				items = v
			case []map[string]any: // TOML's arrays of tables
				for _, m := range v {
					items = append(items, m)
				}
			default:
				return &keyError{err: fmt.Errorf("got %s, want a list of tables", describe(x))}
			}
			list := make([]T, 0, len(items))
			var errs []error
			for i, item := range items {
				v, err := decodeTable(item, fmt.Sprintf("[%d]", i), fields)
				if err != nil {
					errs = append(errs, err)
				}
				list = append(list, v)
			}
			if len(errs) > 0 {
				return errors.Join(errs...)
			}
			*p = list
			return nil
		},
		validate: func() error {
			var errs []error
			for i := range *p {
				if err := validateTable(&(*p)[i], fmt.Sprintf("[%d]", i), fields, check); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		},
	}
}

// newTable returns a T holding the defaults of its fields.
func newTable[T any](fields func(*T) []*option) T {
	var v T
	for _, o := range fields(&v) {
		o.reset()
	}
	return v
}

// decodeTable decodes x, a table at path below its section, into a T.
// Keys are handled in sorted order, so that the problems are reported in
// the same order from run to run; a null value leaves the default.
func decodeTable[T any](x any, path string, fields func(*T) []*option) (T, error) {
	v := newTable(fields)
	m, ok := x.(map[string]any)
	if !ok {
		if _, anyKeys := x.(map[any]any); anyKeys {
			// YAML with keys that are not strings ({1: x}).
			return v, &keyError{path: path, err: errors.New("keys must be names")}
		}
		return v, &keyError{path: path, err: fmt.Errorf("got %s, want a table", describe(x))}
	}
	opts := fields(&v)
	byName := make(map[string]*option, len(opts))
	for _, o := range opts {
		byName[o.name] = o
	}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(m)) {
		o := byName[k]
		kp := path + "." + k
		switch {
		case o == nil:
			errs = append(errs, &keyError{path: kp, unknown: true, hint: suggest(k, optionNames(opts, ""))})
		case m[k] == nil:
		default:
			if err := o.setFile(m[k]); err != nil {
				errs = append(errs, &keyError{path: kp, err: err})
			}
		}
	}
	return v, errors.Join(errs...)
}

// validateTable runs the checks of each field of *p, then check.
func validateTable[T any](p *T, path string, fields func(*T) []*option, check func(*T) error) error {
	var errs []error
	for _, o := range fields(p) {
		if err := o.validate(); err != nil {
			errs = append(errs, &keyError{path: path + "." + o.name, err: err})
		}
	}
	if len(errs) == 0 && check != nil {
		if err := check(p); err != nil {
			errs = append(errs, &keyError{path: path, err: err})
		}
	}
	return errors.Join(errs...)
}

// describe names the kind of a value decoded from YAML or TOML.
func describe(x any) string {
	switch x.(type) {
	case []any, []map[string]any:
		return "a list"
	case map[string]any, map[any]any:
		return "a table"
	case nil:
		return "nothing"
	}
	return "a single value"
}

// sectionNames returns the names of secs in table order.
func sectionNames(secs []*section) []string {
	names := make([]string, len(secs))
	for i, s := range secs {
		names[i] = s.name
	}
	return names
}
