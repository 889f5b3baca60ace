package simnode

import "errors"

func errorsIsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }
