package pipes

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest pipe name, in bytes of UTF-8.
const MaxNameLen = 255

// DefaultName is the name of the pipe used when none is given.
const DefaultName = ""

// ValidateName reports whether name can be a pipe name: valid UTF-8, no
// control characters, at most MaxNameLen bytes. The errors wrap ErrInvalidName.
func ValidateName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes long, the limit is %d", ErrInvalidName, len(name), MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidName, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %q holds the control character %U", ErrInvalidName, name, r)
		}
	}
	return nil
}
