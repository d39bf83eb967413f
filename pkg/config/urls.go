package config

import (
	"regexp"
	"strings"
)

// schemePattern matches the "scheme://" (or "//") that starts a URL.
var schemePattern = regexp.MustCompile(`^(?:[A-Za-z][A-Za-z0-9+.-]*:)?//`)

// urlInText matches a URL inside free text (a log line, an error message):
// it ends at white space or a quote.
var urlInText = regexp.MustCompile("[A-Za-z][A-Za-z0-9+.-]*://[^\\s\"'<>`]+")

// RedactURL returns raw with everything between its scheme and its last '@'
// (the user, the password, or both) replaced by Mask; scheme, host, port,
// path and query stay: "https://user:pw@host/p" → "https://***@host/p". A
// bare "user:pw@host:port" becomes "***@host:port"; a value without '@' is
// returned as it is.
//
// It does not need a valid URL: a password holding an unescaped '/', '?' or
// '#' cannot be told from a path, so an '@' after the host masks the host
// too rather than let part of the password through.
func RedactURL(raw string) string {
	last := strings.LastIndexByte(raw, '@')
	start := len(schemePattern.FindString(raw))
	if last < start {
		return raw
	}
	return raw[:start] + Mask + raw[last:]
}

// RedactURLs returns text with every URL in it redacted by RedactURL. It is
// for text that may quote a configured URL: log lines and error messages.
func RedactURLs(text string) string {
	if !strings.Contains(text, "@") {
		return text
	}
	return urlInText.ReplaceAllStringFunc(text, RedactURL)
}
