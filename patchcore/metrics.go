package patchcore

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// AUROC is the area under the ROC curve of scores against labels (true =
// anomalous): the probability that a random anomalous sample scores above a
// random normal one, ties counting one half (as sklearn's roc_auc_score).
func AUROC(scores []float64, labels []bool) (float64, error) {
	if len(scores) != len(labels) {
		return 0, fmt.Errorf("patchcore: %d scores for %d labels", len(scores), len(labels))
	}
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return scores[order[a]] < scores[order[b]] })
	return aurocSorted(len(scores), func(k int) float64 { return scores[order[k]] }, func(k int) bool { return labels[order[k]] })
}

// aurocSorted computes AUROC from samples in ascending score order by the
// rank-sum (Mann–Whitney U) with tied groups given their average rank.
func aurocSorted(n int, score func(int) float64, label func(int) bool) (float64, error) {
	var pos, neg float64
	var rankSum float64
	for k := 0; k < n; {
		j := k
		var p float64
		for j < n && score(j) == score(k) {
			if label(j) {
				p++
			}
			j++
		}
		avg := float64(k+j+1) / 2 // ranks k+1..j
		rankSum += p * avg
		pos += p
		neg += float64(j-k) - p
		k = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN(), fmt.Errorf("patchcore: AUROC needs both classes (%v anomalous, %v normal)", pos, neg)
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg), nil
}

// PixelAUROC is the AUROC over all pixels of maps against masks. Maps are
// float32 of equal length per image; masks are true on anomalous pixels.
func PixelAUROC(maps [][]float32, masks [][]bool) (float64, error) {
	vals, labs, err := flatten(maps, masks)
	if err != nil {
		return 0, err
	}
	order := sortedIndex(vals)
	return aurocSorted(len(order), func(k int) float64 { return float64(vals[order[k]]) }, func(k int) bool { return labs[order[k]] })
}

func flatten(maps [][]float32, masks [][]bool) ([]float32, []bool, error) {
	if len(maps) != len(masks) {
		return nil, nil, fmt.Errorf("patchcore: %d maps for %d masks", len(maps), len(masks))
	}
	var n int
	for i := range maps {
		if len(maps[i]) != len(masks[i]) {
			return nil, nil, fmt.Errorf("patchcore: map %d has %d pixels, its mask %d", i, len(maps[i]), len(masks[i]))
		}
		n += len(maps[i])
	}
	vals := make([]float32, 0, n)
	labs := make([]bool, 0, n)
	for i := range maps {
		vals = append(vals, maps[i]...)
		labs = append(labs, masks[i]...)
	}
	return vals, labs, nil
}

// sortedIndex returns indices of v in ascending order of value.
func sortedIndex(v []float32) []int32 {
	order := make([]int32, len(v))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		switch {
		case v[a] < v[b]:
			return -1
		case v[a] > v[b]:
			return 1
		}
		return int(a - b)
	})
	return order
}

// AUPRO is the area under the per-region-overlap curve up to maxFPR,
// divided by maxFPR (Bergmann et al., MVTec AD, 2021). Regions are the
// 8-connected components of each mask; at each threshold, PRO is the mean
// over all regions of the share of the region's pixels above it, and FPR is
// the share of all normal pixels above it. The curve is taken at every
// distinct map value (exact, no threshold sampling) and integrated with the
// trapezoid rule, interpolating linearly at maxFPR. w is the maps' width.
func AUPRO(maps [][]float32, masks [][]bool, w int, maxFPR float64) (float64, error) {
	vals, labs, err := flatten(maps, masks)
	if err != nil {
		return 0, err
	}
	// Region id of every anomalous pixel (-1 elsewhere), and region sizes.
	region := make([]int32, len(vals))
	var sizes []float64
	off := 0
	for i, m := range masks {
		if w <= 0 || len(m)%w != 0 {
			return 0, fmt.Errorf("patchcore: mask %d has %d pixels, not rows of %d", i, len(m), w)
		}
		lab, n := components(m, w, len(m)/w)
		base := int32(len(sizes))
		for k := 0; k < n; k++ {
			sizes = append(sizes, 0)
		}
		for p, l := range lab {
			region[off+p] = -1
			if l > 0 {
				region[off+p] = base + l - 1
				sizes[base+l-1]++
			}
		}
		off += len(m)
	}
	var neg float64
	for _, l := range labs {
		if !l {
			neg++
		}
	}
	if len(sizes) == 0 || neg == 0 {
		return math.NaN(), fmt.Errorf("patchcore: AUPRO needs anomalous regions (%d) and normal pixels (%v)", len(sizes), neg)
	}
	order := sortedIndex(vals)
	// Sweep thresholds from the top: after each group of equal values, the
	// group is above the threshold.
	var fp, proSum, area, lastF, lastP float64
	nr := float64(len(sizes))
	for k := len(order) - 1; k >= 0; {
		v := vals[order[k]]
		j := k
		for j >= 0 && vals[order[j]] == v {
			p := order[j]
			if r := region[p]; r >= 0 {
				proSum += 1 / sizes[r]
			} else {
				fp++
			}
			j--
		}
		k = j
		f, pro := fp/neg, proSum/nr
		if f >= maxFPR {
			if f > lastF {
				pro = lastP + (pro-lastP)*(maxFPR-lastF)/(f-lastF)
			}
			area += (maxFPR - lastF) * (lastP + pro) / 2
			return area / maxFPR, nil
		}
		area += (f - lastF) * (lastP + pro) / 2
		lastF, lastP = f, pro
	}
	// All pixels included and FPR 1 < maxFPR cannot happen (maxFPR <= 1).
	return area / maxFPR, nil
}

// components labels the 8-connected true pixels of a w×h mask with 1..n.
func components(m []bool, w, h int) ([]int32, int) {
	return label8(w, h, func(i int) bool { return m[i] }, nil)
}

// label8 labels the 8-connected pixels of a w×h grid for which on is true
// with 1..n (0 elsewhere), reusing lab when it is large enough.
func label8(w, h int, on func(int) bool, lab []int32) ([]int32, int) {
	var stack []int
	return label8Into(w, h, on, lab, &stack)
}

// label8Into is label8 with the flood fill's stack kept in *stack for the
// next call (a Detector labels every frame).
func label8Into(w, h int, on func(int) bool, lab []int32, stackp *[]int) ([]int32, int) {
	if cap(lab) < w*h {
		lab = make([]int32, w*h)
	}
	lab = lab[:w*h]
	clear(lab)
	n := int32(0)
	stack := (*stackp)[:0]
	defer func() { *stackp = stack[:0] }()
	for s := range lab {
		if lab[s] != 0 || !on(s) {
			continue
		}
		n++
		lab[s] = n
		stack = append(stack[:0], s)
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			x, y := p%w, p/w
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					xx, yy := x+dx, y+dy
					if xx < 0 || yy < 0 || xx >= w || yy >= h {
						continue
					}
					q := yy*w + xx
					if lab[q] == 0 && on(q) {
						lab[q] = n
						stack = append(stack, q)
					}
				}
			}
		}
	}
	return lab, int(n)
}

// Confusion counts decisions at a threshold (score > threshold = FAIL).
type Confusion struct {
	TP int `json:"tp"` // defective, failed
	FP int `json:"fp"` // good, failed
	TN int `json:"tn"` // good, passed
	FN int `json:"fn"` // defective, passed
}

// ConfusionAt classifies scores at threshold t.
func ConfusionAt(scores []float64, labels []bool, t float64) Confusion {
	var c Confusion
	for i, s := range scores {
		fail := s > t
		switch {
		case labels[i] && fail:
			c.TP++
		case labels[i]:
			c.FN++
		case fail:
			c.FP++
		default:
			c.TN++
		}
	}
	return c
}

// F1 is the harmonic mean of precision and recall (0 if undefined).
func (c Confusion) F1() float64 {
	if c.TP == 0 {
		return 0
	}
	return 2 * float64(c.TP) / float64(2*c.TP+c.FP+c.FN)
}

// BestF1 returns the threshold that maximises F1 (the midpoint between the
// two scores it separates, the lower one if they are equal) and the F1.
func BestF1(scores []float64, labels []bool) (threshold, f1 float64) {
	s := slices.Clone(scores)
	slices.Sort(s)
	s = slices.Compact(s)
	best, bt := -1.0, 0.0
	for i := range s {
		// Fail everything above s[i].
		t := s[i]
		if i+1 < len(s) {
			t = (s[i] + s[i+1]) / 2
		}
		if i == 0 {
			// Also consider failing everything.
			if f := ConfusionAt(scores, labels, s[0]-1e-9*math.Abs(s[0])-1e-12).F1(); f > best {
				best, bt = f, s[0]-1e-9*math.Abs(s[0])-1e-12
			}
		}
		if f := ConfusionAt(scores, labels, t).F1(); f > best {
			best, bt = f, t
		}
	}
	return bt, best
}

// ROC returns the ROC curve's points (FPR, TPR) from (0,0) to (1,1), one per
// distinct score.
func ROC(scores []float64, labels []bool) (fpr, tpr []float64) {
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	var pos, neg float64
	for _, l := range labels {
		if l {
			pos++
		} else {
			neg++
		}
	}
	fpr, tpr = []float64{0}, []float64{0}
	var tp, fp float64
	for k := 0; k < len(order); {
		j := k
		for j < len(order) && scores[order[j]] == scores[order[k]] {
			if labels[order[j]] {
				tp++
			} else {
				fp++
			}
			j++
		}
		k = j
		fpr = append(fpr, fp/max(neg, 1))
		tpr = append(tpr, tp/max(pos, 1))
	}
	return fpr, tpr
}

// TradeoffPoint is one operating point: at Threshold, the share of good
// parts rejected (FRR) and of defective parts passed (Escape).
type TradeoffPoint struct {
	TargetFRR float64 `json:"target_frr"`
	Threshold float64 `json:"threshold"`
	FRR       float64 `json:"frr"`
	Escape    float64 `json:"escape"`
}

// Tradeoff returns, for each target false-reject rate, the lowest
// threshold that rejects at most that share of the good parts (with n good
// scores and target p, the (⌊p·n⌋+1)-th highest good score: parts fail
// above the threshold) and the escape rate there. It needs both classes.
func Tradeoff(scores []float64, labels []bool, targets []float64) ([]TradeoffPoint, error) {
	var good, bad []float64
	for i, s := range scores {
		if labels[i] {
			bad = append(bad, s)
		} else {
			good = append(good, s)
		}
	}
	if len(good) == 0 || len(bad) == 0 {
		return nil, fmt.Errorf("patchcore: the trade-off needs good and defective images (%d good, %d defective)", len(good), len(bad))
	}
	slices.Sort(good)
	out := make([]TradeoffPoint, len(targets))
	for j, p := range targets {
		k := min(int(math.Floor(p*float64(len(good))+1e-9)), len(good)-1)
		t := good[len(good)-1-k]
		out[j] = OperatingPoint(scores, labels, t)
		out[j].TargetFRR = p
	}
	return out, nil
}

// OperatingPoint is the false-reject and escape rates at threshold t.
func OperatingPoint(scores []float64, labels []bool, t float64) TradeoffPoint {
	c := ConfusionAt(scores, labels, t)
	p := TradeoffPoint{Threshold: t}
	if n := c.FP + c.TN; n > 0 {
		p.FRR = float64(c.FP) / float64(n)
	}
	if n := c.TP + c.FN; n > 0 {
		p.Escape = float64(c.FN) / float64(n)
	}
	return p
}
