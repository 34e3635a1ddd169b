package client

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
)

// Frame is one event as the SSE specification's parser dispatches it.
type Frame struct {
	// Type is the event type; "" for the default (message) type.
	Type string
	// Data is the data field's value (lines joined with "\n").
	Data string
	// ID is the last event id in force when the event was dispatched.
	ID string
	// Retry is the reconnection time in milliseconds set by this frame, or 0.
	Retry int
}

// FrameReader parses a text/event-stream as the WHATWG HTML specification's
// "event stream interpretation" says: lines end in CR, LF or CRLF; a leading
// BOM is skipped; comments are ignored; "data" lines accumulate; an empty
// line dispatches; an id with a NUL is ignored. An event with empty data is
// not dispatched, but its id still becomes the last event id.
type FrameReader struct {
	r      *bufio.Reader
	lastID string
	first  bool
	// skipLF is set after a line that ended in CR: a LF right after it
	// belongs to that line end (CRLF), and is skipped by the next read.
	skipLF bool
	// line holds a line longer than r's buffer while it is read in parts;
	// data holds the event's data lines. Both are reused event to event.
	line, data []byte
}

// NewFrameReader returns a parser reading from r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 4096), first: true}
}

// LastEventID is the id to send as Last-Event-ID on reconnect.
func (p *FrameReader) LastEventID() string { return p.lastID }

// Next returns the next dispatched event, or the read error (io.EOF at the
// end of the stream). An event not terminated by a blank line is dropped, as
// the specification requires.
func (p *FrameReader) Next() (Frame, error) {
	var (
		hasData bool
		typ     string
		retry   int
	)
	p.data = p.data[:0]
	for {
		line, err := p.readLine()
		if err != nil {
			return Frame{}, err
		}
		if len(line) == 0 {
			if !hasData {
				typ, retry = "", 0
				continue
			}
			d := bytes.TrimSuffix(p.data, []byte("\n"))
			return Frame{Type: typ, Data: string(d), ID: p.lastID, Retry: retry}, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			typ = string(value)
		case "data":
			p.data = append(p.data, value...)
			p.data = append(p.data, '\n')
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 && string(value) != p.lastID {
				p.lastID = string(value)
			}
		case "retry":
			if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 && isDigits(value) {
				retry = n
			}
		}
	}
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// readLine returns one line without its terminator (CR, LF or CRLF). The
// line is valid until the next read: it may point into r's buffer, which
// saves copying every line, byte by byte, out of it.
func (p *FrameReader) readLine() ([]byte, error) {
	p.line = p.line[:0]
	for {
		if p.r.Buffered() == 0 {
			if _, err := p.r.Peek(1); err != nil {
				return nil, err
			}
		}
		buf, _ := p.r.Peek(p.r.Buffered())
		if p.skipLF {
			p.skipLF = false
			if buf[0] == '\n' {
				_, _ = p.r.Discard(1) // buffered: cannot fail
				continue
			}
		}
		i := len(buf)
		if lf := bytes.IndexByte(buf, '\n'); lf >= 0 {
			i = lf
		}
		if cr := bytes.IndexByte(buf[:i], '\r'); cr >= 0 {
			i = cr
		}
		if i == len(buf) {
			p.line = append(p.line, buf...)
			_, _ = p.r.Discard(len(buf))
			continue
		}
		line := buf[:i]
		if len(p.line) > 0 {
			line = append(p.line, line...)
			p.line = line
		}
		// Whether a LF follows a CR is left to the next read, which then
		// skips it: waiting for the byte here would hold this line back
		// until the server sends another.
		p.skipLF = buf[i] == '\r'
		_, _ = p.r.Discard(i + 1)
		return p.stripBOM(line), nil
	}
}

func (p *FrameReader) stripBOM(line []byte) []byte {
	if p.first {
		p.first = false
		return bytes.TrimPrefix(line, []byte("\ufeff"))
	}
	return line
}
