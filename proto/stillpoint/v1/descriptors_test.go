package stillpointv1

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// TestSourceFilesMatchTheCompiledCode: the descriptors reflection serves
// are the compiled-in ones plus comments, file by file (a descriptors.binpb
// left behind by a .proto change fails here as well as in proto-check),
// and they carry the API reference's comments.
func TestSourceFilesMatchTheCompiledCode(t *testing.T) {
	files, err := SourceFiles()
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	protoregistry.GlobalFiles.RangeFiles(func(compiled protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(compiled.Path(), "stillpoint/") {
			return true
		}
		src, err := files.FindFileByPath(compiled.Path())
		if err != nil {
			t.Errorf("%s is compiled in but not in descriptors.binpb: run make proto", compiled.Path())
			return true
		}
		want, got := protodesc.ToFileDescriptorProto(compiled), protodesc.ToFileDescriptorProto(src)
		got.SourceCodeInfo = nil
		if !proto.Equal(want, got) {
			t.Errorf("%s: descriptors.binpb differs from the compiled code beyond comments: run make proto", compiled.Path())
		}
		compared++
		return true
	})
	if compared == 0 {
		t.Fatal("no stillpoint/ file compiled in")
	}
	d, err := files.FindDescriptorByName(protoreflect.FullName(CoordinatorService_ServiceDesc.ServiceName + ".StartPause"))
	if err != nil {
		t.Fatal(err)
	}
	if c := d.ParentFile().SourceLocations().ByDescriptor(d).LeadingComments; strings.TrimSpace(c) == "" {
		t.Errorf("StartPause has no leading comment in descriptors.binpb")
	}
}
