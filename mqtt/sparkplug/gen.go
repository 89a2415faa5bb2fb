package sparkplug

// The generated code is committed: building Linesight needs neither protoc
// nor protoc-gen-go. To regenerate after changing sparkplug_b.proto:
//   apt install protobuf-compiler   (Debian 12: protoc 3.21)
//   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12

//go:generate protoc --go_out=. --go_opt=paths=source_relative sparkplug_b.proto
