// Package jpeg decodes baseline and extended-sequential JPEG images (ITU-T
// T.81, Huffman coding, 8-bit samples) straight into the station's frame
// type (internal/rgb.Image), reusing its buffers, so a camera streaming
// MJPEG (exec:, pipe:) decodes every frame without allocating after the
// first one. It can decode at 1/2, 1/4 or 1/8 of the size in the DCT domain
// (a reduced inverse DCT of the low-frequency coefficients, as libjpeg's
// scale_denom), for a model whose input is much smaller than the frame:
// the entropy decoding is the same, the inverse transform and the colour
// conversion shrink with the square of the scale.
//
// # What it decodes, and what it hands on
//
// Decoded here: SOF0 (baseline), SOF1 (extended sequential) and SOF2
// (progressive) frames with 1 (grayscale) or 3 components (YCbCr, or RGB
// when an Adobe APP14 segment says so or the component ids are 'R','G','B'),
// any sampling factors whose ratios to the largest are 1, 2 or 4 (4:4:4,
// 4:2:2, 4:2:0, 4:4:0, 4:1:1), interleaved and non-interleaved scans,
// restart intervals, 8- and 16-bit quantization tables, and frames without
// an EOI. A progressive image keeps its coefficients (2 bytes each) until
// its last scan, then takes the sequential path's transforms; sequential
// images go from the entropy decoder straight to the transform. 4-component
// (CMYK/YCCK) images, which no camera sends, are decoded by Go's image/jpeg
// instead (Decoder.Fallbacks counts them; that allocates). Everything else
// (lossless, hierarchical, arithmetic coding, 12-bit samples, unusual
// sampling ratios) is an error, as it is for image/jpeg.
//
// # Arithmetic, and how close it is to other decoders
//
//   - Inverse DCT at full size: the Loeffler-Ligtenberg-Moschytz
//     factorisation in 32-bit integers with 13-bit constants and two extra
//     bits between the passes (the arithmetic of the IJG's "islow" method);
//     blocks with only a DC coefficient are filled directly (the same value).
//     Within 1 of an exact (float64) inverse DCT on every test block.
//   - Reduced sizes: the N-point inverse DCT (N = 4, 2) of the N x N
//     lowest-frequency coefficients, by matrix products in 13-bit fixed
//     point; 1/8 is the DC term. Each output pixel is the (rounded) average
//     of the s x s pixels it replaces, up to the energy of the discarded
//     frequencies.
//   - Chroma upsampling: replication (each chroma sample covers its 2x1,
//     2x2... pixels), as image/jpeg and ffmpeg's swscale (yuvj4xxp to rgb24)
//     do, not libjpeg's triangle filter.
//   - Colour: JFIF YCbCr to RGB (R = Y + 1.402 Cr', G = Y - 0.344136 Cb' -
//     0.714136 Cr', B = Y + 1.772 Cb') in 16-bit fixed point, rounded.
//
// Against image/jpeg and ffmpeg the differences come from their own inverse
// DCTs (Go's is a different integer factorisation, ffmpeg's the "simple"
// IDCT) and colour rounding; the tests state and check the bounds.
package jpeg
