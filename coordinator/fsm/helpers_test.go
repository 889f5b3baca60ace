package fsm

import (
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func protoreflectName(s string) protoreflect.Name { return protoreflect.Name(s) }

// diffProto returns "" when a and b are equal, else both in text form.
func diffProto(a, b proto.Message) string {
	if proto.Equal(a, b) {
		return ""
	}
	return "want:\n" + prototext.Format(a) + "\ngot:\n" + prototext.Format(b)
}
