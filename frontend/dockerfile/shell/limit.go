package shell

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// MaxExpansion is the most that expansion may add to what is written: one
// word may expand to at most its own length plus MaxExpansion bytes, and
// the words of one instruction (an Expander) together grow by at most
// MaxExpansion bytes. It bounds the memory a short Dockerfile can claim
// through chained variables (ARG a2=$a1$a1$a1$a1 ...): an expansion stops
// as soon as it would cross the limit, before the bytes are allocated.
const MaxExpansion = 1 << 20

// ErrExpansionTooLarge is the error class of an expansion past
// MaxExpansion.
var ErrExpansionTooLarge = errors.New("variable expansion is too large")

// wordTooLarge is the error for one word past its limit.
func wordTooLarge() error {
	return fmt.Errorf("%w: it adds more than 1 MiB (%d bytes) to the word, the limit per word", ErrExpansionTooLarge, MaxExpansion)
}

// appendBounded appends s to b unless that would make b longer than limit.
func appendBounded(b *strings.Builder, s string, limit int) error {
	if b.Len()+len(s) > limit {
		return wordTooLarge()
	}
	b.WriteString(s)
	return nil
}

// replaceAll is re.ReplaceAllLiteralString(value, repl), stopping with an
// error before the result grows past limit: "${v//?/$v}" would otherwise
// square the size of v. It finds the matches the way regexp does (an
// empty match right after a match is skipped); the patterns of ${//} have
// no assertions, so searching value[pos:] is the same as searching value
// from pos.
func replaceAll(re *regexp.Regexp, value, repl string, limit int) (string, error) {
	var b strings.Builder
	last, prevEnd := 0, -1
	for pos := 0; pos <= len(value); {
		loc := re.FindStringIndex(value[pos:])
		if loc == nil {
			break
		}
		start, end := pos+loc[0], pos+loc[1]
		accept := true
		if end == pos {
			// An empty match at pos.
			accept = start != prevEnd
			if pos < len(value) {
				_, n := utf8.DecodeRuneInString(value[pos:])
				pos += n
			} else {
				pos++
			}
		} else {
			pos = end
		}
		prevEnd = end
		if !accept {
			continue
		}
		if err := appendBounded(&b, value[last:start], limit); err != nil {
			return "", err
		}
		if err := appendBounded(&b, repl, limit); err != nil {
			return "", err
		}
		last = end
	}
	if err := appendBounded(&b, value[last:], limit); err != nil {
		return "", err
	}
	return b.String(), nil
}
