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
		data    bytes.Buffer
		hasData bool
		typ     string
		retry   int
	)
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
			d := data.Bytes()
			d = bytes.TrimSuffix(d, []byte("\n"))
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
			data.Write(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
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

// readLine returns one line without its terminator (CR, LF or CRLF).
func (p *FrameReader) readLine() ([]byte, error) {
	var line []byte
	for {
		c, err := p.r.ReadByte()
		if err != nil {
			return nil, err
		}
		switch c {
		case '\n':
			return p.stripBOM(line), nil
		case '\r':
			if next, err := p.r.Peek(1); err == nil && next[0] == '\n' {
				p.r.ReadByte()
			}
			return p.stripBOM(line), nil
		}
		line = append(line, c)
	}
}

func (p *FrameReader) stripBOM(line []byte) []byte {
	if p.first {
		p.first = false
		return bytes.TrimPrefix(line, []byte("\ufeff"))
	}
	return line
}
