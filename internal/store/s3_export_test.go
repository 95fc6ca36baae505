package store

import "time"

// SetS3Clock makes s see now as the current time (for CleanStaging's age).
func SetS3Clock(s *S3, now func() time.Time) { s.now = now }
