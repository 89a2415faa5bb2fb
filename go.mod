module github.com/linesight/linesight

go 1.26

require github.com/google/flatbuffers v25.12.19+incompatible

require (
	go.etcd.io/bbolt v1.5.0
	golang.org/x/image v0.23.0
)

require (
	github.com/nlpodyssey/gopickle v0.2.0 // indirect
	gocv.io/x/gocv v0.32.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
