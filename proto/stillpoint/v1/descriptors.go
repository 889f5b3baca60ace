package stillpointv1

import (
	_ "embed"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// descriptorSet is every file of proto/ (and its imports) with its
// comments: `buf build --as-file-descriptor-set` in `make proto`, checked
// for drift with the generated code. The compiled-in descriptors carry no
// comments; server reflection serves these so that a generic client
// (`grpcurl describe`) shows the API reference.
//
//go:embed descriptors.binpb
var descriptorSet []byte

// ReflectionResolver resolves a file or symbol from SourceFiles first, then
// from everything compiled into the binary (protoregistry.GlobalFiles:
// google.rpc.ErrorInfo, which error details carry, and the other types
// served, such as health), for reflection.ServerOptions.DescriptorResolver.
func ReflectionResolver() (protodesc.Resolver, error) {
	src, err := SourceFiles()
	if err != nil {
		return nil, err
	}
	return layered{src, protoregistry.GlobalFiles}, nil
}

type layered struct{ first, then *protoregistry.Files }

func (l layered) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := l.first.FindFileByPath(path); err == nil {
		return fd, nil
	}
	return l.then.FindFileByPath(path)
}

func (l layered) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := l.first.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return l.then.FindDescriptorByName(name)
}

// SourceFiles returns the descriptors of proto/ with their source info
// (comments).
func SourceFiles() (*protoregistry.Files, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(descriptorSet, &set); err != nil {
		return nil, fmt.Errorf("proto descriptors with comments: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("proto descriptors with comments: %w", err)
	}
	return files, nil
}
