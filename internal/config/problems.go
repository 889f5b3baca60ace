package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every Problems error.
var ErrInvalid = errors.New("invalid configuration")

// Problems collects every validation problem of a configuration so the
// operator sees them all at once, one line each. The zero value is ready.
//
//	var p config.Problems
//	if c.Name == "" {
//		p.Addf("name: must not be empty")
//	}
//	return p.Err()
type Problems []string

// Addf records one problem.
func (p *Problems) Addf(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

// Merge records the problems of a nested configuration's validation error,
// each prefixed with prefix (for example "gossip."). A Problems error is
// flattened; any other error becomes one problem. nil is ignored.
func (p *Problems) Merge(prefix string, err error) {
	if err == nil {
		return
	}
	var nested Problems
	if errors.As(err, &nested) {
		for _, s := range nested {
			*p = append(*p, prefix+s)
		}
		return
	}
	*p = append(*p, prefix+err.Error())
}

// Err returns nil when there are no problems, else p as an error.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return p
}

// Error prints one line per problem.
func (p Problems) Error() string {
	switch len(p) {
	case 0:
		return "no configuration problems"
	case 1:
		return "invalid configuration: " + p[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration (%d problems):", len(p))
	for _, s := range p {
		b.WriteString("\n  ")
		b.WriteString(s)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true for every Problems error.
func (p Problems) Is(target error) bool { return target == ErrInvalid }
