package engine

import (
	"slices"

	"github.com/linesight/linesight/model/tflite"
)

// fusedPad is the padding a PAD folded into the operator after it adds to
// that operator's input, in rows and columns.
type fusedPad struct{ top, bottom, left, right int }

func (p fusedPad) any() bool { return p != fusedPad{} }

// fusePads folds each PAD of height and width into the one operator that
// reads its output, where that operator can pad by itself: a CONV_2D or
// an int8 MAX_POOL_2D with VALID padding (how converters write the
// asymmetric padding of PyTorch's and Keras's stems and stride-2
// convolutions). The reader then takes the PAD's input, and the padded
// tensor is never written: a PAD is a copy of its whole input that is
// memory-bound and runs on one thread, and with two threads it reads
// rows the other core has just written (on Zen 5 with 2 threads the four
// PADs of ResNet18 took 0.11 ms, three times their time on 1 thread). The
// reader pads with the same value: the zero point (PAD keeps its input's
// quantization), or 0.0 for float. A PAD whose output is a tap, or is read
// by any other operator or by a second input, is left as it is.
func (ip *Interpreter) fusePads(taps []int) {
	for si := 0; si < len(ip.steps); si++ {
		s := &ip.steps[si]
		if s.op != tflite.OpPad || len(s.opr.Inputs) != 2 || len(s.opr.Outputs) != 1 || s.opr.Inputs[0] < 0 || s.opr.Inputs[1] < 0 {
			continue
		}
		in, out := ip.tensors[s.opr.Inputs[0]], ip.tensors[s.opr.Outputs[0]]
		if slices.Contains(taps, out.index) || in.typ != out.typ || len(in.shape) != 4 ||
			(in.quantized() && (in.scale != out.scale || in.zp != out.zp || len(in.quant.Scale) > 1)) {
			continue
		}
		pads, err := constInts(ip.tensors[s.opr.Inputs[1]])
		if err != nil || len(pads) != 8 || pads[0] != 0 || pads[1] != 0 || pads[6] != 0 || pads[7] != 0 || slices.Min(pads) < 0 {
			continue
		}
		reader, reads := -1, 0
		for sj := si + 1; sj < len(ip.steps); sj++ {
			for ii, x := range ip.steps[sj].opr.Inputs {
				if x == int32(out.index) {
					reader, reads = sj, reads+1
					if ii != 0 {
						reads++ // not as the data input: not folded
					}
				}
			}
		}
		if reads != 1 || ip.steps[reader].pad.any() || !padsItself(&ip.steps[reader], in) {
			continue
		}
		r := &ip.steps[reader]
		op := *r.opr
		op.Inputs = slices.Clone(op.Inputs)
		op.Inputs[0] = s.opr.Inputs[0]
		r.opr = &op
		r.pad = fusedPad{top: pads[2], bottom: pads[3], left: pads[4], right: pads[5]}
		ip.steps = slices.Delete(ip.steps, si, si+1)
		si--
	}
}

// padsItself reports whether the step can take a fused PAD of input in.
func padsItself(s *step, in *rtensor) bool {
	switch s.op {
	case tflite.OpConv2D:
		opt, ok := s.opr.Options.(tflite.Conv2DOptions)
		return ok && opt.Padding == tflite.PaddingValid
	case tflite.OpMaxPool2D:
		opt, ok := s.opr.Options.(tflite.Pool2DOptions)
		return ok && opt.Padding == tflite.PaddingValid && in.quantized()
	}
	return false
}
