// Package config loads the configuration of `stillpoint server` and
// `stillpoint agent`: a strict YAML file, then STILLPOINT_* environment
// variables, then explicitly set command-line flags (flags > env > file >
// defaults), and collects validation problems (Problems).
//
// A command wires it like this:
//
//	cfg := agent.DefaultConfig()            // defaults
//	if err := config.Resolve(cmd, "config", &cfg); err != nil {
//		return err                      // file, env and flag problems, all of them
//	}
//	if err := cfg.Validate(); err != nil { // a Problems error, one line each
//		return err
//	}
//
// Config struct fields name their YAML key with a `yaml:"key"` tag (default:
// the lower-cased field name) and their flag with a `flag:"flag-name"` tag.
// time.Duration fields take strings such as "30s" or "1m30s".
package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrUnknownKey is matched by a Load error caused by a key the target
// struct does not have.
var ErrUnknownKey = errors.New("unknown configuration key")

// Load reads the YAML file at path strictly into dst (a pointer to a
// struct holding the defaults). Every unknown key is reported with
// file:line:column and its dotted path; type errors name file:line. An
// empty file changes nothing. On error dst may be partly written.
func Load(path string, dst any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Decode(path, data, dst)
}

// Decode is Load for YAML already in memory; name labels errors.
func Decode(name string, data []byte, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config %s: destination must be a non-nil pointer to a struct, got %T", name, dst)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file
		}
		return fmt.Errorf("config %s: %s", name, relocate(name, err.Error()))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: more than one YAML document (line %d); want one", name, extra.Line)
	}
	var p Problems
	checkKeys(name, &root, rv.Elem().Type(), "", &p)
	if len(p) > 0 {
		return unknownKeys(p)
	}
	if err := root.Decode(dst); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return fmt.Errorf("config %s: %s", name, relocate(name, err.Error()))
		}
		for _, e := range te.Errors {
			msg := relocate(name, e)
			if strings.Contains(e, "into time.Duration") {
				msg += ` (write durations as strings like "30s" or "1m30s")`
			}
			p = append(p, msg)
		}
		return p
	}
	return nil
}

// unknownKeys is a Problems that also matches ErrUnknownKey.
type unknownKeys Problems

func (u unknownKeys) Error() string { return Problems(u).Error() }

func (u unknownKeys) Is(target error) bool { return target == ErrUnknownKey || target == ErrInvalid }

// As lets errors.As(err, *Problems) see the list.
func (u unknownKeys) As(target any) bool {
	if p, ok := target.(*Problems); ok {
		*p = Problems(u)
		return true
	}
	return false
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// relocate turns yaml's "line 3: msg" into "file:3: msg".
func relocate(name, msg string) string {
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		return name + ":" + msg[m[2]:m[3]] + ": " + msg[m[1]:]
	}
	return strings.TrimPrefix(msg, "yaml: ")
}

var (
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkKeys reports every mapping key under n that t has no field for.
func checkKeys(file string, n *yaml.Node, t reflect.Type, path string, p *Problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return // decodes itself
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			checkKeys(file, c, t, path, p)
		}
		return
	case yaml.AliasNode:
		if n.Alias != nil {
			checkKeys(file, n.Alias, t, path, p)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // a type error, reported by Decode
		}
		fields, open := structFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.Tag == "!!merge" {
				checkMerge(file, v, t, path, p)
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				if open {
					continue
				}
				p.Addf("%s:%d:%d: unknown key %q (known keys: %s)", file, k.Line, k.Column, join(path, k.Value), knownKeys(fields))
				continue
			}
			checkKeys(file, v, ft, join(path, k.Value), p)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(file, n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), p)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			checkKeys(file, c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), p)
		}
	}
}

func checkMerge(file string, v *yaml.Node, t reflect.Type, path string, p *Problems) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if v.Kind == yaml.SequenceNode {
		for _, c := range v.Content {
			checkMerge(file, c, t, path, p)
		}
		return
	}
	checkKeys(file, v, t, path, p)
}

// structFields maps YAML keys to field types, following inline structs;
// open is true when an inline map accepts any key.
func structFields(t reflect.Type) (fields map[string]reflect.Type, open bool) {
	fields = make(map[string]reflect.Type)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue // yaml.v3 decodes exported fields and embedded structs
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Struct:
				sub, subOpen := structFields(ft)
				for k, v := range sub {
					fields[k] = v
				}
				open = open || subOpen
			case reflect.Map:
				open = true
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields, open
}

func knownKeys(fields map[string]reflect.Type) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
