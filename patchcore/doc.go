// Package patchcore is the anomaly-detection method of Linesight: PatchCore
// (Roth et al., "Towards Total Recall in Industrial Anomaly Detection",
// CVPR 2022) over an int8 backbone and an int8 memory bank.
//
// The public implementations differ in details; these are ours, and every
// one of them is recorded in the bank (bank.Meta) so that a bank always
// scores the way it was built:
//
//   - Embedding: each tap is dequantized, averaged over 3×3 windows with
//     stride 1 and zero padding of 1, dividing by 9 everywhere (padding
//     counts, as torch.nn.AvgPool2d's default); taps after the first are
//     upsampled bilinearly to the first tap's grid with half-pixel centres
//     (align_corners=False, as torch's interpolate); the maps are
//     concatenated per grid cell in tap order. An optional seeded Gaussian
//     projection shortens the vectors. Recipe name: "avg3x3-s1-p1-include-pad",
//     "bilinear-half-pixel".
//
//   - Distance: plain (not squared) Euclidean distance between int8 vectors
//     that share one scale, computed exactly in integers and scaled back to
//     feature units. Patch score = distance to the nearest bank vector.
//
//   - Image score (Eq. 7 of the paper): s* is the largest patch score (the
//     first such patch), m* its nearest bank vector, N_b the b bank vectors
//     nearest to m* with m* itself first (b = 9 by default). The score is
//     s = (1 − exp(s*) / Σ_{m∈N_b} exp(|m_test − m|))·s*, as in anomalib.
//     "max" uses s = s*.
//
//   - Anomaly map: patch scores upsampled bilinearly (half-pixel) to the
//     model input, then blurred with a Gaussian of σ = 4 input pixels,
//     truncated at 4σ, reflecting at the border (scipy.ndimage's "reflect").
//     The map is mapped back onto the frame by undoing the centre crop and
//     the resize; anomalous regions are the 8-connected components of the
//     map above the pixel threshold, reported as boxes in frame pixels.
//
//   - Calibration scores: out of fold. Build embeds every good image once,
//     splits the n images into k seeded folds (5 by default, at most n) and
//     scores each fold's images against a bank selected from the other
//     folds' patches exactly as Build would select it from those images
//     alone; the bank in force learns from all n. So n good parts give n
//     scores from a bank that never saw them. (A single held-out share is
//     an option: BuildOptions.Folds = SingleHoldout.) The scores and the
//     per-image map maxima are kept in the bank (bank.Threshold.Scores).
//
//   - Threshold: the tail rule (default; see TailThreshold) takes a target
//     false-reject rate p (1%) and treats the log scores of good parts as
//     normal with unknown mean and spread: with m, s the mean and standard
//     deviation (n − 1) of the n log scores,
//
//     t = exp(m + t_{1−p, n−1} · s · √(1 + 1/n))
//
//     (t_{q,ν}: Student's t quantile), the upper 1 − p prediction bound for
//     the next good part, which holds for any n, so 10 or 20 parts suffice.
//     The pixel threshold is the same rule on the map maxima. The older
//     rules (max-margin, quantile, sigma; see Calibrate) remain; for them
//     the bank records the rate the same model expects at their threshold
//     (ExpectedFRR). Append recalibrates on the kept scores plus the
//     appended images' leave-one-out scores.
//     The normalized score is 1/(1+exp(−(s−t)/w)): 0.5 at the threshold t,
//     with w = (t − mean of the calibration scores)/ln 19 so that a typical
//     good part reads 0.05 (w = 0.05·t if the threshold is not above the
//     mean). A part fails when its score is above the threshold
//     (normalized > 0.5).
//
// The coreset (greedy k-center on a random projection) and the int8 search
// live in package bank.
package patchcore
