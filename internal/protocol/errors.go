package protocol

import (
	"fmt"
	"time"
)

// InvalidError says that an origin sent something that failed the checks
// and was therefore not stored or served.
type InvalidError struct {
	Source string // the origin that sent it
	What   string // "golang.org/x/mod@v0.1.0 .zip"
	Err    error
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s sent an invalid %s (not stored): %v", e.Source, e.What, e.Err)
}

func (e *InvalidError) Unwrap() error { return e.Err }

// RateLimitError refuses a lookup because the client asked for too many
// things modgate had not stored yet.
type RateLimitError struct {
	Client     string        // the client's IP
	Rate       float64       // the limit, lookups per second
	RetryAfter time.Duration // when the next lookup will be allowed
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("too many lookups of modules not stored in modgate from %s (limit %g per second)", e.Client, e.Rate)
}
