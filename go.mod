module github.com/linesight/linesight

go 1.26

require github.com/google/flatbuffers v25.12.19+incompatible

require golang.org/x/image v0.23.0
