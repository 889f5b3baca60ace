// Package enumname names protobuf enum values for people: the value's name
// without the prefix every value of its enum shares, in lower case
// (pb.OperationState_OPERATION_STATE_COMPLETED -> "completed").
package enumname

import (
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Of returns e's value name minus its enum's prefix, lower-cased. The prefix
// is the enum type's name in upper snake case plus "_" (OperationState ->
// "OPERATION_STATE_"), the buf STANDARD lint convention. A number the enum does
// not declare is returned as its decimal, like the generated String method.
func Of(e protoreflect.Enum) string {
	desc := e.Descriptor()
	v := desc.Values().ByNumber(e.Number())
	if v == nil {
		return strconv.Itoa(int(e.Number()))
	}
	return strings.ToLower(strings.TrimPrefix(string(v.Name()), Prefix(desc)))
}

// Prefix is the value prefix of enum d: its name in upper snake case plus "_".
func Prefix(d protoreflect.EnumDescriptor) string {
	name := string(d.Name())
	var b strings.Builder
	for i, r := range name {
		if i > 0 && unicode.IsUpper(r) {
			// a new word starts at an upper-case letter after a lower-case one
			// or before a lower-case one ("HTTPStatus" -> "HTTP_STATUS").
			prevLower := unicode.IsLower(rune(name[i-1]))
			nextLower := i+1 < len(name) && unicode.IsLower(rune(name[i+1]))
			if prevLower || (nextLower && unicode.IsUpper(rune(name[i-1]))) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	b.WriteByte('_')
	return b.String()
}
