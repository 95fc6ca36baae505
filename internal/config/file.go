package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"
)

// keyValue is one top-level entry of a config file, in file order: an
// option or a section.
type keyValue struct {
	key   string
	value any // as decoded by yaml.v3 or toml into an interface value
}

// loadFile applies the config file at path. Its format is chosen by the
// extension: .yaml, .yml or .toml. The top level must be a mapping from
// option and section names to values; a null YAML value leaves the option or
// section unchanged. Every unknown key and every bad value is reported,
// each naming the file and the key: a section's keys by their full path
// ("hosts[1].token").
func (c *Config) loadFile(path string, opts map[string]*option, secs []*section) error {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("config file %s: %w", path, err)
	}
	var entries []keyValue
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".yaml", ".yml":
		entries, err = parseYAML(data)
	case ".toml":
		entries, err = parseTOML(data)
	default:
		return fmt.Errorf("config file %s: unsupported format %q (want .yaml, .yml or .toml)", path, ext)
	}
	if err != nil {
		return fmt.Errorf("config file %s: %v", path, err)
	}
	file := "config file " + path + ": "
	var errs []error
	for _, e := range entries {
		where := file + e.key
		if o := opts[e.key]; o != nil {
			switch {
			case o.name == configKey:
				errs = append(errs, fmt.Errorf("%skey %q is not allowed in a config file", file, e.key))
			case e.value == nil:
			default:
				if err := o.setFile(e.value); err != nil {
					errs = append(errs, fmt.Errorf("%s: %v", where, err))
				} else {
					c.setSource(e.key, where)
				}
			}
			continue
		}
		if i := slices.IndexFunc(secs, func(s *section) bool { return s.name == e.key }); i >= 0 {
			if e.value == nil {
				continue
			}
			if err := secs[i].decode(e.value); err != nil {
				errs = append(errs, sectionError(file, e.key, err))
			} else {
				c.setSource(e.key, where)
			}
			continue
		}
		// config is not allowed in a file, so it is never the hint.
		hint := ""
		if s := suggest(e.key, append(optionNames(c.options(), configKey), sectionNames(secs)...)); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
		errs = append(errs, fmt.Errorf("%sunknown key %q%s", file, e.key, hint))
	}
	return errors.Join(errs...)
}

func parseYAML(data []byte) ([]keyValue, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	switch root.Kind {
	case 0: // empty file
		return nil, nil
	case yaml.MappingNode:
	default:
		return nil, fmt.Errorf("line %d: top level must be a mapping of option names to values", root.Line)
	}
	var entries []keyValue
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: keys must be option names", k.Line)
		}
		if seen[k.Value] {
			return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
		}
		seen[k.Value] = true
		var x any
		if err := v.Decode(&x); err != nil {
			return nil, fmt.Errorf("%s: %v", k.Value, err)
		}
		entries = append(entries, keyValue{k.Value, x})
	}
	return entries, nil
}

func parseTOML(data []byte) ([]keyValue, error) {
	// Decoding into a map marks every top-level key decoded, so
	// MetaData.Undecoded cannot find unknown keys here; instead the caller
	// checks the top-level keys, taken in file order from MetaData.Keys,
	// against the option table.
	var m map[string]any
	md, err := toml.Decode(string(data), &m)
	if err != nil {
		return nil, err
	}
	var entries []keyValue
	seen := map[string]bool{}
	for _, k := range md.Keys() {
		if len(k) == 0 || seen[k[0]] {
			continue
		}
		seen[k[0]] = true
		entries = append(entries, keyValue{k[0], m[k[0]]})
	}
	return entries, nil
}
