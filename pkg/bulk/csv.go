package bulk

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
)

// ErrTooLong is a field or record over the import's bounds
// (Config.MaxFieldBytes, Config.MaxRecordBytes).
var ErrTooLong = errors.New("too long")

// errUnclosed is a quoted field that runs to the end of the file; it is
// reported where the field starts, not where the file ends.
var errUnclosed = fmt.Errorf("%w: the quoted field that starts here is never closed", csv.ErrQuote)

// csvBufSize is the reader's input buffer: what it may read past a bound
// before it notices.
const csvBufSize = 64 << 10

// csvReader reads RFC 4180 CSV as encoding/csv's Reader does with its
// defaults (comma, no comments, strict quotes; "" escapes, CRLF or LF, empty
// lines skipped, newlines inside quoted fields, \r\n inside them read as \n,
// a last \r before the end of the file dropped): the same records, field
// positions and errors (*csv.ParseError) for the same input, except that
//
//   - a field longer than maxField bytes (decoded) or a record longer than
//     maxRecord bytes (raw, without its line end) is an error wrapping
//     ErrTooLong as soon as the bound is passed, at the field's (or the
//     record's) first byte; the reader holds at most maxRecord bytes of a
//     record and reads at most csvBufSize bytes past a bound. encoding/csv
//     reads a whole line, and an unclosed quote up to the end of the file,
//     before it looks at it;
//   - a quoted field still open at the end of the file is reported at its
//     opening quote (errUnclosed), not at the end of the file;
//   - it never checks the number of fields (the caller does).
//
// After a malformed record it goes on at the next line, as encoding/csv
// does; after ErrTooLong the rest of the input is not worth reading.
type csvReader struct {
	in       io.Reader
	buf      []byte
	pos, end int
	err      error // from in, once buf is drained

	maxField, maxRecord int

	off       int64 // raw bytes consumed
	line, col int   // position of the next byte (1-based)
	skipLine  bool  // a malformed record: drop the rest of its line first

	rec  []byte     // the record's fields, decoded, back to back
	ends []int      // end of each field in rec
	fpos []position // start of each field
	out  []string
}

type position struct{ line, col int }

func newCSVReader(in io.Reader, maxField, maxRecord int) *csvReader {
	return newCSVReaderSize(in, csvBufSize, maxField, maxRecord)
}

// newCSVReaderSize reads through a buffer of bufSize bytes (at least 2: a
// line end is looked at two bytes at a time).
func newCSVReaderSize(in io.Reader, bufSize, maxField, maxRecord int) *csvReader {
	return &csvReader{in: in, buf: make([]byte, max(bufSize, 2)), maxField: maxField, maxRecord: maxRecord, line: 1, col: 1}
}

// InputOffset is the number of raw bytes consumed: after a record (without
// error), the offset of the next record.
func (r *csvReader) InputOffset() int64 { return r.off }

// LinesRead is the number of lines consumed: after a record that ends with
// a line end, the lines before the next record.
func (r *csvReader) LinesRead() int { return r.line - 1 }

// FieldPos returns the line and column (1-based, bytes) where field i of
// the last record starts.
func (r *csvReader) FieldPos(i int) (line, col int) {
	if i < 0 || i >= len(r.fpos) {
		return r.line, r.col
	}
	return r.fpos[i].line, r.fpos[i].col
}

// more makes at least n bytes available at buf[pos:] unless the input ends
// first; it reports whether they are.
func (r *csvReader) more(n int) bool {
	for r.end-r.pos < n {
		if r.err != nil {
			return false
		}
		if r.pos > 0 {
			r.end = copy(r.buf, r.buf[r.pos:r.end])
			r.pos = 0
		}
		m, err := r.in.Read(r.buf[r.end:])
		r.end += m
		if err != nil {
			r.err = err
		}
	}
	return true
}

// ioErr is the input's error, io.EOF at its end.
func (r *csvReader) ioErr() error {
	if r.err == nil {
		return io.EOF
	}
	return r.err
}

// advance consumes n bytes of the current line.
func (r *csvReader) advance(n int) {
	r.pos += n
	r.off += int64(n)
	r.col += n
}

// newline consumes a line end of n bytes (1 or 2).
func (r *csvReader) newline(n int) {
	r.pos += n
	r.off += int64(n)
	r.line++
	r.col = 1
}

// endLine consumes the line end lineEnd found: n bytes, or the last bytes
// of the input when atEOF (which start no new line).
func (r *csvReader) endLine(n int, atEOF bool) {
	if atEOF {
		r.pos += n
		r.off += int64(n)
		return
	}
	r.newline(n)
}

// plain appends to the field the bytes in the buffer before the first one
// stop marks and reports whether such a byte was found (false: the buffer
// ended first). tooLong checks the bounds before they join the field.
func (r *csvReader) plain(stop *[256]bool, tooLong func(n, add int) error) (bool, error) {
	chunk := r.buf[r.pos:r.end]
	i := 0
	for i < len(chunk) && !stop[chunk[i]] {
		i++
	}
	if err := tooLong(i, i); err != nil {
		return false, err
	}
	r.rec = append(r.rec, chunk[:i]...)
	r.advance(i)
	return i < len(chunk), nil
}

// lineEnd reports whether a line ends at buf[pos] and its length: "\n",
// "\r\n", or a last "\r" of the input (dropped, as encoding/csv does).
// atEOF is the end of the input.
func (r *csvReader) lineEnd() (n int, atEOF bool) {
	if !r.more(1) {
		return 0, true
	}
	switch r.buf[r.pos] {
	case '\n':
		return 1, false
	case '\r':
		if !r.more(2) {
			return 1, true
		}
		if r.buf[r.pos+1] == '\n' {
			return 2, false
		}
	}
	return 0, false
}

// special and quotedSpecial mark the bytes that end a run of plain field
// bytes outside and inside quotes.
var (
	special       = [256]bool{',': true, '"': true, '\n': true, '\r': true}
	quotedSpecial = [256]bool{'"': true, '\n': true, '\r': true}
)

// Read returns the next record. The strings share one allocation per
// record; the slice is reused by the next call. At the end of the input it
// returns io.EOF.
func (r *csvReader) Read() ([]string, error) {
	if r.skipLine {
		r.skipLine = false
		for {
			if !r.more(1) {
				break
			}
			if n, _ := r.lineEnd(); n > 0 {
				r.newline(n)
				break
			}
			r.advance(1)
		}
	}
	// Empty lines are skipped.
	for {
		n, atEOF := r.lineEnd()
		if atEOF {
			r.endLine(n, atEOF)
			return nil, r.ioErr()
		}
		if n == 0 {
			break
		}
		r.newline(n)
	}
	r.rec, r.ends, r.fpos = r.rec[:0], r.ends[:0], r.fpos[:0]
	recLine, recStart := r.line, r.off
	for {
		start := position{r.line, r.col}
		r.fpos = append(r.fpos, start)
		fieldStart := len(r.rec)
		// tooLong checks the bounds before n more bytes join the field
		// (add of them decoded).
		quoted := r.more(1) && r.buf[r.pos] == '"'
		tooLong := func(n, add int) error {
			if len(r.rec)-fieldStart+add > r.maxField {
				hint := ""
				if quoted && r.line > start.line {
					hint = "; is its quote ever closed?" // it swallowed line ends
				}
				return &csv.ParseError{StartLine: recLine, Line: start.line, Column: start.col,
					Err: fmt.Errorf("field %w (over %d bytes, --max-field-bytes%s)", ErrTooLong, r.maxField, hint)}
			}
			if r.off+int64(n)-recStart > int64(r.maxRecord) {
				return &csv.ParseError{StartLine: recLine, Line: recLine, Column: 1,
					Err: fmt.Errorf("record %w (over %d bytes, --max-record-bytes)", ErrTooLong, r.maxRecord)}
			}
			return nil
		}
		endRecord := false
		if quoted {
			if err := tooLong(1, 0); err != nil {
				return nil, err
			}
			r.advance(1)
		inQuotes:
			for {
				if !r.more(1) {
					if r.err != io.EOF {
						return nil, r.err
					}
					return nil, &csv.ParseError{StartLine: recLine, Line: start.line, Column: start.col, Err: errUnclosed}
				}
				found, err := r.plain(&quotedSpecial, tooLong)
				if err != nil {
					return nil, err
				}
				if !found {
					continue
				}
				switch r.buf[r.pos] {
				case '"':
					q := position{r.line, r.col}
					r.advance(1)
					n, atEOF := r.lineEnd()
					switch {
					case atEOF || n > 0:
						r.endLine(n, atEOF)
						endRecord = true
						break inQuotes
					case r.buf[r.pos] == '"':
						if err := tooLong(1, 1); err != nil {
							return nil, err
						}
						r.rec = append(r.rec, '"')
						r.advance(1)
					case r.buf[r.pos] == ',':
						r.advance(1)
						break inQuotes
					default:
						r.skipLine = true
						return nil, &csv.ParseError{StartLine: recLine, Line: q.line, Column: q.col, Err: csv.ErrQuote}
					}
				default: // a line end inside the field, or a \r of it
					n, atEOF := r.lineEnd()
					switch {
					case atEOF: // a last \r
						r.endLine(n, atEOF)
					case n > 0:
						if err := tooLong(n, 1); err != nil {
							return nil, err
						}
						r.rec = append(r.rec, '\n')
						r.newline(n)
					default:
						if err := tooLong(1, 1); err != nil {
							return nil, err
						}
						r.rec = append(r.rec, '\r')
						r.advance(1)
					}
				}
			}
		} else {
		unquoted:
			for {
				if !r.more(1) {
					endRecord = true
					break
				}
				found, err := r.plain(&special, tooLong)
				if err != nil {
					return nil, err
				}
				if !found {
					continue
				}
				switch r.buf[r.pos] {
				case ',':
					r.advance(1)
					break unquoted
				case '"':
					r.skipLine = true
					return nil, &csv.ParseError{StartLine: recLine, Line: r.line, Column: r.col, Err: csv.ErrBareQuote}
				default:
					n, atEOF := r.lineEnd()
					switch {
					case atEOF || n > 0:
						r.endLine(n, atEOF)
						endRecord = true
						break unquoted
					default:
						if err := tooLong(1, 1); err != nil {
							return nil, err
						}
						r.rec = append(r.rec, '\r')
						r.advance(1)
					}
				}
			}
		}
		r.ends = append(r.ends, len(r.rec))
		if endRecord {
			break
		}
	}
	s := string(r.rec)
	r.out = r.out[:0]
	prev := 0
	for _, e := range r.ends {
		r.out = append(r.out, s[prev:e])
		prev = e
	}
	return r.out, nil
}
