package camera

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/linesight/linesight/internal/jpeg"
	"github.com/linesight/linesight/internal/rgb"
)

// SplitCommand splits an exec: command line into arguments as a POSIX
// shell would, without running one: blanks separate arguments, 'single
// quotes' keep everything, "double quotes" keep everything but \" \\ \$ \`
// escapes, and a backslash outside quotes keeps the next character. There
// are no variables, globs, pipes or redirections.
func SplitCommand(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	in := false // inside an argument
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			if in {
				args = append(args, cur.String())
				cur.Reset()
				in = false
			}
		case ch == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("command %q: unterminated single quote", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case ch == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("command %q: unterminated double quote", s)
			}
			in = true
		case ch == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("command %q: ends with a backslash", s)
			}
			i++
			cur.WriteByte(s[i])
			in = true
		default:
			cur.WriteByte(ch)
			in = true
		}
	}
	if in {
		args = append(args, cur.String())
	}
	return args, nil
}

// maxJPEGBytes bounds one streamed JPEG frame for a pixel budget: 3 bytes a
// pixel (more than any real encoder writes at quality 100) plus 1 MiB of
// headers and tables, at most 1 GiB.
func maxJPEGBytes(maxPixels int) int {
	return int(min(3*int64(maxPixels)+1<<20, 1<<30))
}

// stopGrace is how long a stopped command has between SIGTERM and SIGKILL.
const stopGrace = time.Second

// streamDriver reads frames from a command's standard output (exec:) or a
// named pipe (pipe:).
type streamDriver struct {
	cfg    Config
	kind   Kind
	log    *slog.Logger
	resync func(string)

	r     *os.File // stdout's read end, or the FIFO
	split *jpegSplitter
	raw   []byte // a raw frame, or a JPEG frame given Huffman tables
	dec   jpeg.Decoder

	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	waitErr error
	stderr  *os.File
	logged  sync.WaitGroup // the stderr logger
	// stopping: Close has begun; what the command says about its broken
	// pipe then is not news (logged at Debug).
	stopping atomic.Bool
}

func newStreamDriver(cfg Config, log *slog.Logger, resync func(string)) (driver, error) {
	return &streamDriver{cfg: cfg, kind: KindOf(cfg.Source), log: log, resync: resync,
		dec: jpeg.Decoder{Scale: max(cfg.ExecScale, 1), MaxPixels: cfg.MaxPixels}}, nil
}

func (d *streamDriver) Open(context.Context) (Info, error) {
	info := Info{Backend: string(d.kind) + ":" + d.cfg.ExecFormat}
	if execBytesPerPixel(d.cfg.ExecFormat) > 0 {
		info.Width, info.Height = d.cfg.ExecWidth, d.cfg.ExecHeight
	}
	src := strings.TrimSpace(d.cfg.Source)
	if d.kind == KindPipe {
		path := strings.TrimSpace(strings.TrimPrefix(src, "pipe:"))
		fi, err := os.Stat(path)
		if err != nil {
			return Info{}, err
		}
		if fi.Mode()&os.ModeNamedPipe == 0 {
			return Info{}, fmt.Errorf("%s is not a named pipe (mkfifo)", path)
		}
		// Read-write, so that opening does not wait for a writer and the
		// FIFO does not end when a writer closes: writers may come and go
		// (the frame a closing writer cut is dropped as a resync), and
		// ReadTimeout without a frame reopens it. Opened this way on Linux
		// it is in Go's poller, so read deadlines work.
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return Info{}, err
		}
		d.r = f
	} else if err := d.start(strings.TrimPrefix(src, "exec:")); err != nil {
		return Info{}, err
	}
	d.split = newJPEGSplitter(d.r, maxJPEGBytes(d.cfg.MaxPixels), d.resync)
	return info, nil
}

// start runs the command in its own process group, stdout and stderr to
// pipes.
func (d *streamDriver) start(line string) error {
	args, err := SplitCommand(line)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return errors.New("exec: without a command")
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = procAttr()
	err = cmd.Start()
	outW.Close() // the child has its copies
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return err
	}
	d.cmd, d.r, d.stderr = cmd, outR, errR
	d.exited = make(chan struct{})
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()
	d.logged.Add(1)
	go d.logStderr(args[0])
	d.log.Info("camera: command started", "pid", cmd.Process.Pid, "command", args[0])
	return nil
}

// Stderr logging limits: a line is cut at maxStderrLine bytes, and at most
// stderrBurst lines are logged per stderrWindow (the rest are counted).
const (
	maxStderrLine = 512
	stderrBurst   = 20
	stderrWindow  = 10 * time.Second
)

func (d *streamDriver) logStderr(name string) {
	defer d.logged.Done()
	br := bufio.NewReaderSize(d.stderr, maxStderrLine)
	var start time.Time
	n, suppressed := 0, 0
	for {
		line, isPrefix, err := br.ReadLine()
		if len(line) > 0 || (err == nil && !isPrefix) {
			if now := time.Now(); now.Sub(start) > stderrWindow {
				if suppressed > 0 {
					d.log.Warn("camera: command stderr lines not logged", "command", name, "lines", suppressed)
				}
				start, n, suppressed = now, 0, 0
			}
			if d.stopping.Load() {
				d.log.Debug("camera: command stderr while stopping", "command", name, "line", string(bytes.ToValidUTF8(line, []byte("?"))))
			} else if n++; n <= stderrBurst {
				d.log.Warn("camera: command stderr", "command", name, "line", string(bytes.ToValidUTF8(line, []byte("?"))))
			} else {
				suppressed++
			}
		}
		for isPrefix && err == nil { // the rest of a long line is dropped
			_, isPrefix, err = br.ReadLine()
		}
		if err != nil {
			if suppressed > 0 {
				d.log.Warn("camera: command stderr lines not logged", "command", name, "lines", suppressed)
			}
			return
		}
	}
}

// Read reads the next frame into dst. No frame within ReadTimeout is a
// stall (an error: the session restarts the command); ctx ending stops
// the read at once.
func (d *streamDriver) Read(ctx context.Context, dst *rgb.Image) error {
	if err := d.r.SetReadDeadline(time.Now().Add(d.cfg.ReadTimeout)); err != nil {
		return fmt.Errorf("camera: %s cannot time its reads: %w", d.kind, err)
	}
	r := d.r // Close may clear d.r while this runs
	stop := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		err := d.readFrame(dst)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var bad badFrame
		if errors.As(err, &bad) {
			if d.resync != nil {
				d.resync(err.Error())
			}
			continue
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("no frame for %v (stalled)", d.cfg.ReadTimeout)
		case errors.Is(err, io.EOF) && d.cmd != nil:
			return fmt.Errorf("command ended (%s)", d.exitStatus())
		case errors.Is(err, io.EOF):
			return io.EOF
		}
		return err
	}
}

// badFrame is a frame that was cut out of the stream but did not decode:
// reading goes on at the next one.
type badFrame struct{ err error }

func (e badFrame) Error() string { return "a frame that does not decode: " + e.err.Error() }

func (e badFrame) Unwrap() error { return e.err }

func (d *streamDriver) readFrame(dst *rgb.Image) error {
	if bpp := execBytesPerPixel(d.cfg.ExecFormat); bpp > 0 {
		w, h := d.cfg.ExecWidth, d.cfg.ExecHeight
		if cap(d.raw) < w*h*bpp {
			d.raw = make([]byte, w*h*bpp)
		}
		d.raw = d.raw[:w*h*bpp]
		if _, err := io.ReadFull(d.r, d.raw); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return io.EOF
			}
			return err
		}
		dst.Ensure(w, h)
		rawToRGB(d.cfg.ExecFormat, d.raw, dst.Pix)
		return nil
	}
	if _, err := d.split.Next(); err != nil {
		return err
	}
	// Decoded straight into dst, reusing its buffer and the decoder's:
	// no allocation per frame once the first frame has sized them.
	if err := d.dec.Decode(dst, d.split.huffmanTables(&d.raw)); err != nil {
		return badFrame{err}
	}
	return nil
}

// rawToRGB converts one raw frame to packed RGB.
func rawToRGB(format string, src, dst []byte) {
	switch format {
	case ExecRGB24:
		copy(dst, src)
	case ExecBGR24:
		for i := 0; i+2 < len(src); i += 3 {
			dst[i], dst[i+1], dst[i+2] = src[i+2], src[i+1], src[i]
		}
	case ExecGray8:
		for i, v := range src {
			dst[3*i], dst[3*i+1], dst[3*i+2] = v, v, v
		}
	}
}

// exitStatus waits briefly for the command that closed its stdout.
func (d *streamDriver) exitStatus() string {
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-d.exited:
		if d.waitErr == nil {
			return "exit status 0"
		}
		return d.waitErr.Error()
	case <-t.C:
		return "stdout closed, still running"
	}
}

// Close stops the command (SIGTERM to its process group, SIGKILL to it
// after stopGrace, and SIGKILL to what is left of the group once the
// command is gone) and closes the pipes. Its stdout is closed first: a
// command blocked writing a frame nobody reads gets EPIPE at once rather
// than waiting for SIGKILL (ffmpeg finishes its write before it looks at
// SIGTERM).
func (d *streamDriver) Close() error {
	d.stopping.Store(true)
	var err error
	if d.r != nil {
		err = d.r.Close()
		d.r = nil
	}
	if d.cmd != nil {
		pgid := d.cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		t := time.NewTimer(stopGrace)
		select {
		case <-d.exited:
		case <-t.C:
			d.log.Warn("camera: command did not stop on SIGTERM; killing it", "pid", pgid)
		}
		t.Stop()
		syscall.Kill(-pgid, syscall.SIGKILL) // the group's stragglers too
		<-d.exited
		d.stderr.Close()
		d.logged.Wait()
		d.cmd = nil
	}
	return err
}
