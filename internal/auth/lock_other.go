//go:build !unix || aix

package auth

// lockFile does nothing without flock(2): two `modgate token` runs at the
// same instant may then lose one's entry (the file itself is still
// replaced atomically, never left half-written).
func lockFile(name string) (unlock func(), err error) {
	return func() {}, nil
}
