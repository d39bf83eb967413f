package filters

import (
	"fmt"
	"strconv"
	"strings"
)

// Logic is a parsed "logic" expression (CONTRACT §8): filters combined by
// their 1-based position with and, or, not and parentheses. not binds
// tighter than and, and tighter than or.
type Logic struct {
	op   byte // 'r' reference, '!' not, '&' and, '|' or
	ref  int  // 0-based filter index for 'r'
	l, r *Logic
}

// maxLogicLen bounds an expression (and so the parser's recursion).
const maxLogicLen = 4096

// ParseLogic parses expr for a query of n filters. Every filter must be
// referenced at least once. Errors start with "logic" and name the
// 1-based character position of the bad token.
func ParseLogic(expr string, n int) (*Logic, error) {
	if len(expr) > maxLogicLen {
		return nil, fmt.Errorf("logic: %d characters, at most %d allowed", len(expr), maxLogicLen)
	}
	p := &logicParser{src: expr, n: n}
	if err := p.lex(); err != nil {
		return nil, err
	}
	if len(p.toks) == 0 {
		return nil, fmt.Errorf("logic: empty expression")
	}
	l, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		t := p.toks[p.i]
		if t.text == ")" {
			return nil, fmt.Errorf("logic: unbalanced parentheses: %q at position %d closes nothing", t.text, t.pos)
		}
		return nil, fmt.Errorf("logic: unexpected %s at position %d", t.show(), t.pos)
	}
	seen := make([]bool, n)
	l.walk(func(x *Logic) {
		if x.op == 'r' {
			seen[x.ref] = true
		}
	})
	for i, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("logic: filter %d is not referenced", i+1)
		}
	}
	return l, nil
}

// Eval evaluates the expression; match(i) reports whether filter i (0-based)
// holds and is called at most once per filter, only when needed.
func (l *Logic) Eval(match func(i int) bool) bool {
	cache := map[int]bool{}
	var eval func(x *Logic) bool
	eval = func(x *Logic) bool {
		switch x.op {
		case 'r':
			v, ok := cache[x.ref]
			if !ok {
				v = match(x.ref)
				cache[x.ref] = v
			}
			return v
		case '!':
			return !eval(x.l)
		case '&':
			return eval(x.l) && eval(x.r)
		}
		return eval(x.l) || eval(x.r)
	}
	return eval(l)
}

// String renders the expression fully parenthesised, for tests and logs.
func (l *Logic) String() string {
	switch l.op {
	case 'r':
		return strconv.Itoa(l.ref + 1)
	case '!':
		return "not " + l.l.String()
	case '&':
		return "(" + l.l.String() + " and " + l.r.String() + ")"
	}
	return "(" + l.l.String() + " or " + l.r.String() + ")"
}

func (l *Logic) walk(fn func(*Logic)) {
	if l == nil {
		return
	}
	fn(l)
	l.l.walk(fn)
	l.r.walk(fn)
}

type logicToken struct {
	text string // "(", ")", "and", "or", "not" or a number
	pos  int    // 1-based character position
	num  bool
}

func (t logicToken) show() string { return strconv.Quote(t.text) }

type logicParser struct {
	src  string
	n    int
	toks []logicToken
	i    int
}

func (p *logicParser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')':
			p.toks = append(p.toks, logicToken{text: string(c), pos: i + 1})
			i++
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			p.toks = append(p.toks, logicToken{text: s[i:j], pos: i + 1, num: true})
			i = j
		case isLetter(c):
			j := i
			for j < len(s) && (isLetter(s[j]) || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			w := strings.ToLower(s[i:j])
			if w != "and" && w != "or" && w != "not" {
				return fmt.Errorf("logic: unknown word %q at position %d (want a filter number, and, or, not, parentheses)", quoteShort(s[i:j]), i+1)
			}
			p.toks = append(p.toks, logicToken{text: w, pos: i + 1})
			i = j
		default:
			return fmt.Errorf("logic: unexpected character %q at position %d", rune(c), i+1)
		}
	}
	return nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func quoteShort(s string) string {
	if len(s) > maxShown {
		return s[:maxShown] + "…"
	}
	return s
}

func (p *logicParser) peek(text string) bool {
	return p.i < len(p.toks) && !p.toks[p.i].num && p.toks[p.i].text == text
}

func (p *logicParser) or() (*Logic, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek("or") {
		p.i++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &Logic{op: '|', l: l, r: r}
	}
	return l, nil
}

func (p *logicParser) and() (*Logic, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.peek("and") {
		p.i++
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &Logic{op: '&', l: l, r: r}
	}
	return l, nil
}

func (p *logicParser) unary() (*Logic, error) {
	if p.i >= len(p.toks) {
		return nil, fmt.Errorf("logic: unexpected end at position %d (want a filter number, not or \"(\")", len(p.src)+1)
	}
	t := p.toks[p.i]
	switch {
	case t.num:
		p.i++
		k, err := strconv.Atoi(t.text)
		if err != nil || k < 1 || k > p.n {
			return nil, fmt.Errorf("logic: filter %s at position %d does not exist (%d filters)", quoteShort(t.text), t.pos, p.n)
		}
		return &Logic{op: 'r', ref: k - 1}, nil
	case t.text == "not":
		p.i++
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &Logic{op: '!', l: x}, nil
	case t.text == "(":
		p.i++
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.peek(")") {
			if p.i < len(p.toks) {
				u := p.toks[p.i]
				return nil, fmt.Errorf("logic: unexpected %s at position %d (want \")\")", u.show(), u.pos)
			}
			return nil, fmt.Errorf("logic: unbalanced parentheses: \"(\" at position %d is not closed", t.pos)
		}
		p.i++
		return x, nil
	}
	return nil, fmt.Errorf("logic: unexpected %s at position %d (want a filter number, not or \"(\")", t.show(), t.pos)
}
