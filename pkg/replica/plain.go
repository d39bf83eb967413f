package replica

import "strconv"

// flatObject reads, without encoding/json, a JSON object as this package
// writes it: no whitespace, and scalar values only (strings without
// escapes or non-ASCII bytes, numbers, booleans, null). It calls fn with
// each key and the raw text of its value (a string with its quotes), in
// order, and reports false, leaving the text to encoding/json, for
// anything else or when fn does.
func flatObject(text string, fn func(key, raw string) bool) bool {
	p := 0
	str := func() (string, bool) {
		if p >= len(text) || text[p] != '"' {
			return "", false
		}
		for i := p + 1; i < len(text); i++ {
			switch c := text[i]; {
			case c == '"':
				s := text[p : i+1]
				p = i + 1
				return s, true
			case c == '\\' || c < 0x20 || c >= 0x80:
				return "", false
			}
		}
		return "", false
	}
	if len(text) < 2 || text[0] != '{' || text[len(text)-1] != '}' {
		return false
	}
	p = 1
	for first := true; p < len(text)-1; first = false {
		if !first {
			if text[p] != ',' {
				return false
			}
			p++
		}
		key, ok := str()
		if !ok || p >= len(text) || text[p] != ':' {
			return false
		}
		p++
		var raw string
		if p < len(text) && text[p] == '"' {
			if raw, ok = str(); !ok {
				return false
			}
		} else {
			from := p
			for p < len(text)-1 && text[p] != ',' {
				if c := text[p]; c == '{' || c == '[' || c == '"' || c == ' ' {
					return false
				}
				p++
			}
			raw = text[from:p]
		}
		if !fn(key[1:len(key)-1], raw) {
			return false
		}
	}
	return p == len(text)-1
}

// plainString returns the text of a raw JSON string flatObject passed.
func plainString(raw string) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	return raw[1 : len(raw)-1], true
}

// plainBool reads a raw JSON boolean.
func plainBool(raw string) (bool, bool) {
	switch raw {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// plainInt reads a raw JSON integer as encoding/json reads it into an
// int64 (no fraction, exponent or leading zero).
func plainInt(raw string) (int64, bool) {
	digits := raw
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	return n, err == nil
}

// decodePlainRole reads, without encoding/json, a stored role without a
// pending source, exactly as encoding/json would; ok is false for anything
// else.
func decodePlainRole(text string) (storedRole, bool) {
	var s storedRole
	ok := flatObject(text, func(key, raw string) bool {
		var ok bool
		switch key {
		case "o":
			s.Opp, ok = plainString(raw)
		case "c":
			s.Contact, ok = plainString(raw)
		case "r":
			s.Role, ok = plainString(raw)
		case "v":
			s.Version, ok = plainString(raw)
		case "p":
			var b bool
			if b, ok = plainBool(raw); ok {
				s.IsPrimary = &b
			}
		case "d":
			s.Deleted, ok = plainBool(raw)
		case "s":
			s.Stale, ok = plainBool(raw)
		case "pe":
			s.Pending, ok = plainBool(raw)
		case "dl":
			s.Deadline, ok = plainInt(raw)
		}
		return ok
	})
	return s, ok
}
