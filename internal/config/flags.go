package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ApplyFlags copies every flag that was set (on the command line or by
// BindEnv) into the field of dst tagged `flag:"<name>"`, walking nested
// structs. Tagged fields whose flag the command does not define, or did not
// set, keep their value. Supported field types: string, bool, integers,
// floats, time.Duration, []string and encoding.TextUnmarshaler.
func ApplyFlags(fs *pflag.FlagSet, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: ApplyFlags destination must be a non-nil pointer to a struct, got %T", dst)
	}
	var p Problems
	applyFlags(fs, rv.Elem(), &p)
	return p.Err()
}

func applyFlags(fs *pflag.FlagSet, v reflect.Value, p *Problems) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() && !sf.Anonymous {
			continue
		}
		fv := v.Field(i)
		name, tagged := sf.Tag.Lookup("flag")
		if !tagged {
			if sf.Type.Kind() == reflect.Struct {
				applyFlags(fs, fv, p)
			}
			continue
		}
		f := fs.Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		if !fv.CanSet() {
			p.Addf("flag --%s: field %s.%s cannot be set (unexported)", name, t.Name(), sf.Name)
			continue
		}
		if err := setField(fv, f.Value); err != nil {
			p.Addf("flag --%s=%q: %v", name, f.Value.String(), err)
		}
	}
}

var durationType = reflect.TypeFor[time.Duration]()

func setField(fv reflect.Value, val pflag.Value) error {
	if tu, ok := fv.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return tu.UnmarshalText([]byte(val.String()))
	}
	s := val.String()
	if fv.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, fv.Type().Bits())
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 0, fv.Type().Bits())
		if err != nil {
			return err
		}
		fv.SetUint(n)
	case reflect.Float32, reflect.Float64:
		x, err := strconv.ParseFloat(s, fv.Type().Bits())
		if err != nil {
			return err
		}
		fv.SetFloat(x)
	case reflect.Slice:
		sv, ok := val.(pflag.SliceValue)
		if !ok || fv.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("cannot set %s from a %s flag", fv.Type(), val.Type())
		}
		items := sv.GetSlice()
		out := reflect.MakeSlice(fv.Type(), len(items), len(items))
		for i, it := range items {
			out.Index(i).SetString(it)
		}
		fv.Set(out)
	default:
		return fmt.Errorf("unsupported field type %s", fv.Type())
	}
	return nil
}

// Resolve fills dst (holding the defaults) with the standard precedence:
// flags > STILLPOINT_* environment > the YAML file named by the flag
// configFlag (itself settable as STILLPOINT_<CONFIGFLAG>) > defaults. It
// reports environment, file and flag problems together; validating the
// result is the caller's job.
func Resolve(cmd *cobra.Command, configFlag string, dst any) error {
	envErr := BindEnv(cmd, EnvPrefix)
	fs := cmd.Flags()
	var loadErr error
	if configFlag != "" {
		if f := fs.Lookup(configFlag); f == nil {
			loadErr = fmt.Errorf("flag --%s (config file) is not defined on %q", configFlag, cmd.CommandPath())
		} else if path := f.Value.String(); path != "" {
			loadErr = Load(path, dst)
		}
	}
	flagErr := ApplyFlags(fs, dst)
	if envErr == nil && flagErr == nil {
		return loadErr // keeps ErrUnknownKey matchable
	}
	var p Problems
	p.Merge("", envErr)
	p.Merge("", loadErr)
	p.Merge("", flagErr)
	return p.Err()
}
