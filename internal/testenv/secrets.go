package testenv

import (
	"strings"

	"github.com/modgate/modgate/internal/redact"
)

// ShownUserinfo returns the first user information in text (what lies
// between "scheme://" and an "@" before the end of the authority) that is
// not the redaction mask, or "". Tests use it to prove that no credential
// of a URL survives into a message or a name.
func ShownUserinfo(text string) string {
	for rest := text; ; {
		i := strings.Index(rest, "://")
		if i < 0 {
			return ""
		}
		hasScheme := i > 0 && strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-", rune(rest[i-1]))
		rest = rest[i+3:]
		if !hasScheme {
			continue // "//://x@": no scheme, so no authority either
		}
		authority := rest
		if end := strings.IndexAny(rest, "/?#\" \t"); end >= 0 {
			authority = rest[:end]
		}
		if at := strings.LastIndex(authority, "@"); at >= 0 && authority[:at] != redact.Mask {
			return authority[:at]
		}
	}
}
