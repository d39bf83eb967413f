package bulk

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// result is one Read of a CSV reader: a record with its field positions
// and the offset after it, or an error.
type result struct {
	rec    []string
	pos    [][2]int
	offset int64
	err    error
}

func (r result) String() string {
	if r.err != nil {
		return "error " + r.err.Error()
	}
	return fmt.Sprintf("%q at %v, offset %d", r.rec, r.pos, r.offset)
}

// reader is what csvReader and encoding/csv's Reader have in common.
type reader interface {
	Read() ([]string, error)
	FieldPos(int) (int, int)
	InputOffset() int64
}

// readAll reads to the end of the input (at most 1000 reads).
func readAll(r reader) []result {
	var out []result
	for range 1000 {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			out = append(out, result{err: err})
			if errors.Is(err, ErrTooLong) {
				break
			}
			continue
		}
		res := result{rec: append([]string(nil), rec...), offset: r.InputOffset()}
		for i := range rec {
			l, c := r.FieldPos(i)
			res.pos = append(res.pos, [2]int{l, c})
		}
		out = append(out, res)
	}
	return out
}

// reference reads text with encoding/csv as the import used to.
func reference(text string) []result {
	cr := csv.NewReader(strings.NewReader(text))
	cr.FieldsPerRecord = -1
	return readAll(cr)
}

// bounded reads with the import's reader through a small buffer (every
// path that refills it is taken).
func bounded(in io.Reader, maxField, maxRecord int) []result {
	return readAll(newCSVReaderSize(in, 3, maxField, maxRecord))
}

func TestCSVReaderParsesAsEncodingCSV(t *testing.T) {
	tests := []struct {
		name string
		text string
		want [][]string
	}{
		{"bulk api", "\"Id\",\"Name\"\n\"006000000000000001\",\"Deal\"\n", [][]string{{"Id", "Name"}, {"006000000000000001", "Deal"}}},
		{"quoted newline", "a,\"x\ny\",b\n", [][]string{{"a", "x\ny", "b"}}},
		{"escaped quotes", "\"a \"\"b\"\"\",\"\"\"\"\n", [][]string{{`a "b"`, `"`}}},
		{"crlf", "a,b\r\nc,\"d\r\ne\"\r\n", [][]string{{"a", "b"}, {"c", "d\ne"}}},
		{"empty fields", ",\"\",\n,,\n", [][]string{{"", "", ""}, {"", "", ""}}},
		{"empty lines", "\n\r\na\n\n\nb", [][]string{{"a"}, {"b"}}},
		{"no newline at the end", "a,\"b\"", [][]string{{"a", "b"}}},
		{"last cr", "a,b\r", [][]string{{"a", "b"}}},
		{"lone cr", "a\rb,\"c\rd\"\n", [][]string{{"a\rb", "c\rd"}}},
		{"bom kept", "\ufeffId\n", [][]string{{"\ufeffId"}}},
		{"trailing comma at the end", "a,", [][]string{{"a", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, in := range []io.Reader{strings.NewReader(tt.text), iotest.OneByteReader(strings.NewReader(tt.text))} {
				got := bounded(in, 100, 100)
				var recs [][]string
				for _, r := range got {
					if r.err != nil {
						t.Fatalf("error %v", r.err)
					}
					recs = append(recs, r.rec)
				}
				if !reflect.DeepEqual(recs, tt.want) {
					t.Fatalf("records %q, want %q", recs, tt.want)
				}
				if want := reference(tt.text); !reflect.DeepEqual(got, want) {
					t.Fatalf("got      %v\nencoding/csv %v", got, want)
				}
			}
		})
	}
}

func TestCSVReaderErrors(t *testing.T) {
	tests := []struct {
		name                string
		text                string
		maxField, maxRecord int
		want                string // the first error: "line:column: text"
		next                []string
	}{
		{"bare quote", "a,b\"c\nd\n", 100, 100, `1:4: bare " in non-quoted-field`, []string{"d"}},
		{"text after a closing quote", "\"a\nb\"c,d\ne\n", 100, 100, `2:2: extraneous or missing " in quoted-field`, []string{"e"}},
		{"unclosed at the end", "a\n\"b,\nc\n", 100, 100, `2:1: extraneous or missing " in quoted-field: the quoted field that starts here is never closed`, nil},
		{"field over the bound", "a,b\nc,dddddd,e\n", 5, 100, "2:3: field too long (over 5 bytes, --max-field-bytes)", nil},
		{"field at the bound", "ddddd\n\"ee\"\"ee\"\n", 5, 100, "", nil},
		{"quoted field over the bound", "a\nb,\"x\ny\nzzzz\"\n", 5, 100, "2:3: field too long (over 5 bytes, --max-field-bytes; is its quote ever closed?)", nil},
		{"escapes count once", "\"\"\"\"\"\"\"\"\"\"\"\"\n", 5, 100, "", nil},
		{"record over the bound", "a\nb,c,d,e,f\n", 5, 8, "2:1: record too long (over 8 bytes, --max-record-bytes)", nil},
		{"record at the bound", "a\nb,c,d,e\r\n", 5, 7, "", nil},
		{"commas only", "a\n" + strings.Repeat(",", 100), 5, 50, "2:1: record too long (over 50 bytes, --max-record-bytes)", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newCSVReader(iotest.OneByteReader(strings.NewReader(tt.text)), tt.maxField, tt.maxRecord)
			got := ""
			var next []string
			for {
				_, err := r.Read()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					var pe *csv.ParseError
					if !errors.As(err, &pe) {
						t.Fatalf("%T %v", err, err)
					}
					got = fmt.Sprintf("%d:%d: %v", pe.Line, pe.Column, pe.Err)
					if errors.Is(err, ErrTooLong) {
						break
					}
					rec, err := r.Read()
					if err == nil {
						next = rec
					}
					break
				}
			}
			if got != tt.want {
				t.Fatalf("error %q, want %q", got, tt.want)
			}
			if !reflect.DeepEqual(next, tt.next) {
				t.Fatalf("next record %q, want %q", next, tt.next)
			}
		})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// An unbalanced quote on line 2 of a file much bigger than the bound is
// reported at line 2 once the bound is passed, not at the end of the file.
func TestCSVReaderUnbalancedQuoteStopsAtTheBound(t *testing.T) {
	var b strings.Builder
	b.WriteString(oppHeader + "\n")
	b.WriteString(`"` + strings.ReplaceAll(oppRow(1), `"`, "") + "\n")
	for i := 2; b.Len() < 8<<20; i++ {
		b.WriteString(strings.ReplaceAll(oppRow(i), `"`, "") + "\n")
	}
	text := b.String()
	const bound = 16 << 10
	in := &countingReader{r: strings.NewReader(text)}
	r := newCSVReader(in, bound, 4*bound)
	if _, err := r.Read(); err != nil {
		t.Fatal(err)
	}
	_, err := r.Read()
	var pe *csv.ParseError
	if !errors.As(err, &pe) || !errors.Is(err, ErrTooLong) || pe.Line != 2 || pe.Column != 1 {
		t.Fatalf("error %v, want too long at 2:1", err)
	}
	if limit := int64(len(oppHeader) + bound + csvBufSize + 1); in.n > limit {
		t.Fatalf("read %d of %d bytes before reporting it, want at most %d", in.n, len(text), limit)
	}
	// encoding/csv (what the import used) reads the whole file first.
	ref := &countingReader{r: strings.NewReader(text)}
	cr := csv.NewReader(ref)
	cr.FieldsPerRecord = -1
	if _, err := cr.Read(); err != nil {
		t.Fatal(err)
	}
	if _, err := cr.Read(); !errors.Is(err, csv.ErrQuote) || ref.n != int64(len(text)) {
		t.Fatalf("encoding/csv: %v after %d of %d bytes", err, ref.n, len(text))
	}
}

// FuzzCSV compares the import's CSV reader with encoding/csv: within its
// bounds the same records, field positions, offsets and errors (but for
// where an unclosed quote is reported); with small bounds the same until
// ErrTooLong, which must concern a field or record that is indeed over.
func FuzzCSV(f *testing.F) {
	for _, s := range []string{
		oppHeader + "\n" + oppRow(3) + "\n" + oppRow(7) + "\n",
		"a,\"b\r\nc\"\r\n\r\n,\n",
		"\"a\"\"b\",c\r",
		"a\"b,c\n\"d\"e\nf",
		"\"unclosed,\nx,y\n",
		"a\rb,\"c\rd\"\r\r\n",
		",,,,\n\n\"\"",
		"\ufeff\"Id\"\n\"006\"\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		want := reference(text)
		big := len(text) + 1
		compare(t, readAll(newCSVReader(strings.NewReader(text), big, big)), want, text)
		compare(t, bounded(iotest.OneByteReader(strings.NewReader(text)), big, big), want, text)
		const maxField, maxRecord = 4, 12
		got := bounded(iotest.OneByteReader(strings.NewReader(text)), maxField, maxRecord)
		for i, g := range got {
			if !errors.Is(g.err, ErrTooLong) {
				continue
			}
			// want[i] is the same read by encoding/csv: it must be over a
			// bound, or an error (say an unclosed quote).
			if i >= len(want) {
				t.Fatalf("read %d: %v, encoding/csv ended", i, g.err)
			}
			w := want[i]
			raw := w.offset
			if i > 0 {
				raw -= want[i-1].offset
			}
			over := w.err != nil || raw > maxRecord
			for _, fl := range w.rec {
				over = over || len(fl) > maxField
			}
			if !over {
				t.Fatalf("read %d: %v, but encoding/csv read %v (%d raw bytes)\ninput %q", i, g.err, w, raw, text)
			}
			compare(t, got[:i], want[:i], text)
			return
		}
		compare(t, got, want, text)
	})
}

func compare(t *testing.T, got, want []result, text string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d reads, encoding/csv %d\ngot  %v\nwant %v\ninput %q", len(got), len(want), got, want, text)
	}
	for i := range got {
		g, w := got[i], want[i]
		if (g.err == nil) != (w.err == nil) {
			t.Fatalf("read %d: %v, encoding/csv %v\ninput %q", i, g, w, text)
		}
		if g.err == nil {
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("read %d: %v, encoding/csv %v\ninput %q", i, g, w, text)
			}
			continue
		}
		var gp, wp *csv.ParseError
		if !errors.As(g.err, &gp) || !errors.As(w.err, &wp) || !errors.Is(gp.Err, wp.Err) {
			t.Fatalf("read %d: %v, encoding/csv %v\ninput %q", i, g.err, w.err, text)
		}
		if !errors.Is(gp.Err, errUnclosed) && (gp.Line != wp.Line || gp.Column != wp.Column) {
			t.Fatalf("read %d: %v, encoding/csv %v\ninput %q", i, g.err, w.err, text)
		}
	}
}
