package camera

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
)

// JPEG markers (ITU-T T.81, Table B.1).
const (
	markSOI = 0xD8 // start of image
	markEOI = 0xD9 // end of image
	markSOS = 0xDA // start of scan: entropy-coded data follows its header
	markTEM = 0x01 // standalone
	markRST = 0xD0 // RST0..RST7 (0xD0..0xD7): standalone, also inside scans
	markDHT = 0xC4 // define Huffman tables
)

// jpegSplitter cuts a stream of concatenated JPEG images (what `ffmpeg -f
// mjpeg -`, GStreamer's `jpegenc ! fdsink` and `rpicam-vid --codec mjpeg`
// write) into whole images, SOI to EOI. It walks the marker segments by
// their lengths (so an EOI inside an APP segment, an EXIF thumbnail for
// instance, is not the end) and, after SOS, the entropy-coded data, where
// 0xFF is followed by 0x00 (stuffing, B.1.1.5), RST0..7, fill 0xFF bytes
// (B.1.1.2) or a marker ending the scan. What does not fit (bytes between
// images, a frame cut by a new SOI, a frame larger than max) is dropped
// and reported to resync; the splitter then looks for the next SOI. It
// holds at most max bytes.
type jpegSplitter struct {
	r      *bufio.Reader
	max    int
	frame  []byte
	resync func(reason string) // may be nil
	// Of the last frame: the offset of its first SOS marker (0: none) and
	// whether a DHT came before it.
	sos    int
	sawDHT bool
}

func newJPEGSplitter(r io.Reader, max int, resync func(string)) *jpegSplitter {
	return &jpegSplitter{r: bufio.NewReaderSize(r, 64<<10), max: max, resync: resync}
}

func (s *jpegSplitter) dropped(format string, a ...any) {
	if s.resync != nil {
		s.resync(fmt.Sprintf(format, a...))
	}
}

// errRestart: a new SOI began inside a frame; the frame restarts there.
var errRestart = errors.New("SOI inside a frame")

// errTooLarge: the frame grew past max.
var errTooLarge = errors.New("frame too large")

// errBadMarker: something other than a marker where one must be.
type errBadMarker string

func (e errBadMarker) Error() string { return string(e) }

// Next returns the next whole JPEG image of the stream, valid until the
// following call. Its errors are the reader's (io.EOF at the end; a frame
// cut by the end of the stream is dropped and reported first).
func (s *jpegSplitter) Next() ([]byte, error) {
	restart := false
	for {
		if !restart {
			if err := s.findSOI(); err != nil {
				return nil, err
			}
		}
		restart = false
		s.frame = append(s.frame[:0], 0xFF, markSOI)
		s.sos, s.sawDHT = 0, false
		err := s.body()
		switch {
		case err == nil:
			return s.frame, nil
		case errors.Is(err, errRestart):
			s.dropped("a frame cut short after %d bytes (a new frame started)", len(s.frame))
			restart = true
		case errors.Is(err, errTooLarge):
			s.dropped("a frame larger than %d bytes", s.max)
		case errors.As(err, new(errBadMarker)):
			s.dropped("a frame with %v after %d bytes", err, len(s.frame))
		default: // the reader's error
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				s.dropped("a frame cut short after %d bytes (the stream ended)", len(s.frame))
				return nil, io.EOF
			}
			return nil, err
		}
	}
}

// findSOI skips bytes up to and including the next FF D8.
func (s *jpegSplitter) findSOI() error {
	skipped := 0
	defer func() {
		if skipped > 0 {
			s.dropped("%d bytes of garbage between frames", skipped)
		}
	}()
	prevFF := false
	for {
		b, err := s.r.ReadByte()
		if err != nil {
			return err
		}
		if prevFF && b == markSOI {
			skipped-- // the FF was part of the SOI
			return nil
		}
		prevFF = b == 0xFF
		skipped++
	}
}

func (s *jpegSplitter) add(b ...byte) error {
	if len(s.frame)+len(b) > s.max {
		return errTooLarge
	}
	s.frame = append(s.frame, b...)
	return nil
}

// marker reads FF (fill FFs) and the marker code after it.
func (s *jpegSplitter) marker() (byte, error) {
	b, err := s.r.ReadByte()
	if err != nil {
		return 0, err
	}
	if b != 0xFF {
		return 0, errBadMarker(fmt.Sprintf("byte %#02x where a marker must be", b))
	}
	for b == 0xFF {
		if b, err = s.r.ReadByte(); err != nil {
			return 0, err
		}
	}
	return b, nil
}

// body reads the rest of a frame after its SOI, up to and including EOI.
func (s *jpegSplitter) body() error {
	m, err := s.marker()
	for {
		if err != nil {
			return err
		}
		switch {
		case m == markSOI:
			return errRestart
		case m == markEOI:
			return s.add(0xFF, markEOI)
		case m == markTEM || (m >= markRST && m <= markRST+7):
			if err := s.add(0xFF, m); err != nil {
				return err
			}
		case m == 0x00:
			return errBadMarker("a stuffed 00 outside entropy-coded data")
		default:
			// A marker segment: its length counts itself, not the marker.
			// Byte by byte: an array passed to io.ReadFull would escape,
			// an allocation per segment.
			var l [2]byte
			for i := range l {
				if l[i], err = s.r.ReadByte(); err != nil {
					return err
				}
			}
			n := int(l[0])<<8 | int(l[1])
			if n < 2 {
				return errBadMarker(fmt.Sprintf("marker %#02x with length %d", m, n))
			}
			if len(s.frame)+4+n-2 > s.max {
				return errTooLarge
			}
			switch {
			case m == markDHT && s.sos == 0:
				s.sawDHT = true
			case m == markSOS && s.sos == 0:
				s.sos = len(s.frame)
			}
			s.frame = append(s.frame, 0xFF, m, l[0], l[1])
			at := len(s.frame)
			s.frame = append(s.frame, make([]byte, n-2)...)
			if _, err := io.ReadFull(s.r, s.frame[at:]); err != nil {
				return err
			}
			if m == markSOS {
				m, err = s.scan()
				continue
			}
		}
		m, err = s.marker()
	}
}

// scan copies entropy-coded data up to the marker that ends it, and
// returns that marker's code.
func (s *jpegSplitter) scan() (byte, error) {
	for {
		// Copy up to the next FF in one go.
		if s.r.Buffered() == 0 {
			if _, err := s.r.Peek(1); err != nil {
				return 0, err
			}
		}
		buf, _ := s.r.Peek(s.r.Buffered())
		i := bytes.IndexByte(buf, 0xFF)
		if i < 0 {
			i = len(buf)
		}
		if err := s.add(buf[:i]...); err != nil {
			return 0, err
		}
		s.r.Discard(i)
		if i < len(buf) {
			s.r.Discard(1) // the FF
			b, err := s.r.ReadByte()
			for err == nil && b == 0xFF {
				b, err = s.r.ReadByte()
			}
			if err != nil {
				return 0, err
			}
			if b == 0x00 || (b >= markRST && b <= markRST+7) {
				if err := s.add(0xFF, b); err != nil {
					return 0, err
				}
				continue
			}
			return b, nil
		}
	}
}

// defaultDHT is a DHT segment with the four Huffman tables of T.81 Annex
// K.3 (luminance DC/AC as tables 0, chrominance as 1), the ones Go's
// encoder writes, taken from its output.
var defaultDHT = func() []byte {
	var b bytes.Buffer
	jpeg.Encode(&b, image.NewYCbCr(image.Rect(0, 0, 8, 8), image.YCbCrSubsampleRatio420), nil)
	data := b.Bytes()
	for i := 2; i+4 <= len(data) && data[i] == 0xFF; {
		n := int(data[i+2])<<8 | int(data[i+3])
		if data[i+1] == markDHT {
			return bytes.Clone(data[i : i+2+n])
		}
		i += 2 + n
	}
	panic("camera: Go's JPEG encoder wrote no DHT")
}()

// huffmanTables returns the frame the splitter last returned with the
// standard Huffman tables inserted before its first scan when it has none
// of its own: USB cameras' MJPEG (and the AVI1 format) leave them out, and
// decoders are to assume those (as ffmpeg and libjpeg's MJPEG readers do).
// Other frames come back as they are. *buf holds the copy (reused).
func (s *jpegSplitter) huffmanTables(buf *[]byte) []byte {
	if s.sawDHT || s.sos == 0 {
		return s.frame
	}
	b := append((*buf)[:0], s.frame[:s.sos]...)
	b = append(b, defaultDHT...)
	*buf = append(b, s.frame[s.sos:]...)
	return *buf
}
