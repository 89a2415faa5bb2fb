// Package qgemm holds the int8 matrix kernels behind convolution, fully
// connected layers and bank search.
//
// The exported entries check shapes once; the kernels behind them trust
// their inputs. This issue ships the portable Go reference only; SIMD
// implementations will sit beside it behind the same signatures and must
// equal it bit for bit.
package qgemm
