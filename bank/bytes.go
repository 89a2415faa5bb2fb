package bank

import "unsafe"

// bytesOf views int8 values as bytes (same size and layout), so vectors
// are hashed and written without a copy.
func bytesOf(v []int8) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v))
}

// int8sOf views bytes as int8 values.
func int8sOf(b []byte) []int8 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
}
