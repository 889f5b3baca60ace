//go:build !linux

package coordinator_test

import (
	"errors"
	"time"
)

type netemNamespace struct{}

func newNetemNamespace(time.Duration, time.Duration) (*netemNamespace, error) {
	return nil, errors.New("network namespaces are Linux-only")
}

func (*netemNamespace) ServerAddr() string         { return "" }
func (*netemNamespace) Enter(f func() error) error { return f() }
func (*netemNamespace) Close()                     {}
